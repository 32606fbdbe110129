# The soft/fuzzy learning study (issue 7) lives here once its sweep is defined; see README.
