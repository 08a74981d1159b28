"""Part 1: the LSTM and the vanilla RNN on palindromes (steps, sweep, train, summary)."""
