"""Backtest the optimization policy itself: replay history through the real decision core on a
simulated clock, retrain with the real pipeline when a policy says so, trade the champion of each
moment after costs, and compare what each retraining policy earned (`autoopt backtest`)."""
