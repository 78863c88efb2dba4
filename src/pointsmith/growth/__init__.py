"""Growth value: earned with points, never spent; it lifts members through tiers."""
