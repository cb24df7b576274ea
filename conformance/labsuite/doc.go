// Package labsuite connects the conformance suite to the one-machine lab: the
// suite's client is the lab's client namespace, its router the lab's FRR, its faults
// the lab's process control. The conformance run and the benchmarks share it.
package labsuite
