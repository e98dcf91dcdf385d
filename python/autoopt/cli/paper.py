"""``autoopt paper``: run the paper trader alone (`autoopt.paper.trader`), e.g. beside a service
that does not run it; the same as ``[paper] enabled`` inside ``autoopt serve``."""

from __future__ import annotations

import typer

from autoopt.cli.context import console, run


def paper(ctx: typer.Context) -> None:
    """Fill routed paper signals against the bars and publish their outcomes, until Ctrl-C."""
    import asyncio
    import signal

    from autoopt.paper.trader import PaperTrader
    from autoopt.registry import open_registry
    from autoopt.runtime import open_event_log, open_plugins

    cfg = ctx.obj.config()

    async def go() -> None:
        log = await open_event_log(cfg)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            trader = PaperTrader(log, cfg.paper, registry=open_registry(cfg),
                                 plugins=open_plugins(cfg))
            console.print(f"paper trader: fees {cfg.paper.fees_bps} bps, slippage "
                          f"{cfg.paper.slippage_bps} bps, hold {cfg.paper.hold_bars} bars")
            await trader.run(stop)
            console.print(f"paper trader stopped: {trader.outcomes} outcomes")
        finally:
            await log.close()

    run(go())


__all__ = ["paper"]
