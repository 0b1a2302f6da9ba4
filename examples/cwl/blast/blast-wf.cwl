#!/usr/bin/env cwl-runner
# Two steps: index the reference, then search the queries against it.
cwlVersion: v1.2
class: Workflow
doc: makeblastdb then blastn; Updraft runs each step as a task, the database passing between them.
inputs:
  reference: File
  queries: File
  evalue:
    type: double
    default: 0.00001
outputs:
  hits:
    type: File
    outputSource: search/hits
  database:
    type: File
    outputSource: index/db
steps:
  index:
    run: makeblastdb.cwl
    in:
      reference: reference
    out: [db]
  search:
    run: blastn.cwl
    in:
      query: queries
      db: index/db
      evalue: evalue
    out: [hits]
