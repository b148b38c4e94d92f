"""``mlsgw audit`` (R-K7): pure reviews that turn what was read into findings, and the runner."""
