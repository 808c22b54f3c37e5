"""ipywidgets front-ends for the course: one module per widget. Importing builds nothing."""
