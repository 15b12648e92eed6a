//go:build race

package engine_test

// raceEnabled: a race-enabled worker costs about ten times the CPU, so
// the crash test tries every fourth kill point under the race detector.
const raceEnabled = true
