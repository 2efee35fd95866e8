"""What a profile needs to run campaigns: the profile itself, a computer, codes and a pseudopotential family."""
