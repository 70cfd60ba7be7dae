"""The benchmarks behind ``aligngym bench NAME``: one module per benchmark (its code, options and report).

``aligngym.runs.bench.registry`` lists them; ``aligngym.runs.bench.options`` holds the options they share.
"""
