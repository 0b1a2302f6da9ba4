"""Common Workflow Language (CWL v1.2) support.

`load` parses documents with cwl-utils (only where a run is planned); `plan` turns a CWL
process and its job into an Updraft Workflow; `launch` is the task-side program that builds a
step's command line from its resolved inputs, runs it and collects its outputs (standard
library only, so it runs the same in the local pools, the task function and the worker);
`runner` is the `updraft-cwl-runner` command.
"""
