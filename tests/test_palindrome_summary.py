"""Part 1's summary in words: computed from the numbers, judged against the study at its own lengths."""

from __future__ import annotations

from jaxgan.palindrome import summary


def _results(finals: dict[tuple[str, int], list[float]]) -> dict:
    """Results with one run per seed whose validation accuracy rises linearly to its final value."""
    runs = []
    for (model, length), per_seed in finals.items():
        for seed, final in enumerate(per_seed):
            curve = [final * (epoch + 1) / 10 for epoch in range(10)]
            runs.append({"model": model, "encoding": "scalar", "length": length, "seed": seed,
                         "final_val_acc": final, "val_acc": curve})
    return {"runs": runs}


def test_first_epoch_at_99_percent_and_the_lowest_after_it():
    curve = [0.5, 0.99, 0.7, 1.0, 0.995]
    assert summary.epochs_to_converge(curve) == 2
    assert summary.lowest_after_converging(curve) == 0.7
    assert summary.epochs_to_converge([0.1, 0.98]) is None
    assert summary.lowest_after_converging([0.1, 0.98]) is None


def test_the_studys_finding_is_stated_when_the_numbers_show_it():
    text = summary.finding(_results({
        ("lstm", 5): [1.0, 1.0], ("lstm", 15): [1.0, 0.995],
        ("rnn", 5): [1.0, 1.0], ("rnn", 15): [0.12, 0.09]}))
    assert "The LSTM (scalar digits) learned every length." in text
    assert "The vanilla RNN (scalar digits) learned T = 5; stayed near chance at T = 15 (0.10)." in text
    assert text.endswith("As the study found, only the LSTM still learns the longer palindromes.")


def test_a_difference_from_the_study_is_said_with_the_numbers():
    text = summary.finding(_results({
        ("lstm", 5): [1.0, 1.0], ("lstm", 20): [1.0, 0.5],
        ("rnn", 5): [1.0, 1.0], ("rnn", 20): [0.5, 0.7]}))
    assert "The LSTM (scalar digits) learned T = 5; ended at 0.75 at T = 20." in text
    assert "The vanilla RNN (scalar digits) learned T = 5; ended at 0.60 at T = 20." in text
    assert text.endswith("This differs from the study's finding (the LSTM learns every length; "
                         "the vanilla RNN stays near chance from T = 15 on).")


def test_lengths_past_the_studys_do_not_overturn_its_finding():
    """The LSTM failing at T = 60, a length the study never tried, leaves the verdict at T <= 20."""
    finals = {("lstm", 5): [1.0], ("lstm", 20): [1.0], ("lstm", 60): [0.7],
              ("rnn", 5): [1.0], ("rnn", 20): [0.1], ("rnn", 60): [0.1]}
    text = summary.finding(_results(finals))
    assert "The LSTM (scalar digits) learned T = 5 and 20; ended at 0.70 at T = 60." in text
    assert text.endswith("At the study's lengths (T <= 20), as the study found, only the LSTM still "
                         "learns the longer palindromes.")
    finals[("lstm", 20)] = [0.5]
    assert summary.finding(_results(finals)).endswith(
        "At the study's lengths (T <= 20), this differs from the study's finding (the LSTM learns every "
        "length; the vanilla RNN stays near chance from T = 15 on).")


def test_no_verdict_without_both_models_at_a_long_length():
    assert "study" not in summary.finding(_results({("lstm", 5): [1.0], ("rnn", 5): [1.0]}))
    assert "study" not in summary.finding(_results({("rnn", 15): [0.1]}))
