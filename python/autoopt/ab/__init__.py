"""A/B testing and champion/challenger rollout on live signals.

`stats` and `sequential` analyse per-trade returns; `experiments` is the experiment lifecycle as
events and its projection; `tracking` joins trade outcomes to variants; `decision` turns the
numbers into promote / roll back / keep; `router` sends each signal to its variant.
"""
