#!/usr/bin/env cwl-runner
# Build a nucleotide BLAST database from a FASTA file (written for Updraft's CWL example).
cwlVersion: v1.2
class: CommandLineTool
doc: makeblastdb -dbtype nucl; the database's index (.nin) is the primary file, the rest ride along.
baseCommand: [makeblastdb, -dbtype, nucl]
requirements:
  ResourceRequirement:
    coresMin: 1
    ramMin: 256
inputs:
  reference:
    type: File
    format: edam:format_1929  # FASTA
    inputBinding: {prefix: -in}
  name:
    type: string
    default: refdb
    inputBinding: {prefix: -out}
outputs:
  db:
    type: File
    outputBinding: {glob: $(inputs.name).nin}
    secondaryFiles: [^.nhr, ^.nsq, ^.ndb?, ^.not?, ^.ntf?, ^.nto?, ^.njs?]
stdout: makeblastdb.log
$namespaces:
  edam: http://edamontology.org/
