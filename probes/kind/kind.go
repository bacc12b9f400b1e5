// Package kind holds the kinds of the records in the probes' one ring
// buffer: the first byte of every record, which says which probe wrote it
// and how to decode it. Generated from probes/include/ring.h, their one
// definition, which the BPF programs include.
package kind

//go:generate go run ./gen ../include/ring.h kinds.go
