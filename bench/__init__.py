"""The benchmarks: each is a module with `main(argv)` (`python -m bench.<name>`) that prints a table
and, as its last stdout line, one JSON object. `bench.harness` is their one way to start the API,
a worker and the events app, and to find the sample data."""
