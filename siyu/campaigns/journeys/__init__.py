"""SOPs and journeys: triggers enrol customers, steps run on a schedule, goals exit them."""
