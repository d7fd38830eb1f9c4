"""What a learner sees: the course's plots and the notebooks' interactive widgets.
Imports the data layer and nothing above it."""
