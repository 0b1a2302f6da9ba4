#!/usr/bin/env cwl-runner
# Search nucleotide queries against a database built by makeblastdb.cwl.
cwlVersion: v1.2
class: CommandLineTool
doc: blastn with tabular output (-outfmt 6); -db is the database's path without its extension.
baseCommand: blastn
requirements:
  ResourceRequirement:
    coresMin: 1
    ramMin: 512
inputs:
  query:
    type: File
    inputBinding: {prefix: -query}
  db:
    type: File
    secondaryFiles: [^.nhr, ^.nsq, ^.ndb?, ^.not?, ^.ntf?, ^.nto?, ^.njs?]
  evalue:
    type: double
    default: 0.00001
    inputBinding: {prefix: -evalue}
  max_hits:
    type: int?
    inputBinding: {prefix: -max_target_seqs}
arguments:
  - {prefix: -db, valueFrom: $(inputs.db.dirname)/$(inputs.db.nameroot)}
  - {prefix: -outfmt, valueFrom: "6"}
stdout: $(inputs.query.nameroot).hits.tsv
outputs:
  hits: stdout
