"""The ``pyworkflow`` command line: parser, commands, output and the demo. Uses the public
API, the storage backends and the core's fold to show runs.
"""
