"""Alerts: rules that turn log events into what operators must hear about (`rules`), webhook
delivery with retries (`webhook`: generic JSON and Slack-compatible), and the service component
that follows the log, delivers and records each alert as an `AlertRaised` event (`alerter`).
Rules and destinations live in the ``[alerts]`` config section."""
