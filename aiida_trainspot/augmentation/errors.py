"""The signal that an operation does not apply to a structure (slabs of a molecule, swaps in a pure element)."""


class NotApplicableError(ValueError):
    """An augmentation operation does not apply to this structure; the message says why.

    The calculation functions catch it, skip the structure and report the reason; it is not a failure.
    """
