"""The pure job domain: model, stages, verdicts, transitions, stall rules, tracker, ETA."""
