"""The machine the course runs on: settings, device, cache folders, data and weight
installers, and the JupyterLab launcher. Imports nothing else of the package."""
