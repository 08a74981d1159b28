"""Every setting, defined once: one frozen dataclass per experiment (see ``base`` for what fields carry)."""
