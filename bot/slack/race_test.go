//go:build race

package slack_test

// raceEnabled: the race detector costs about ten times the CPU, which on
// a small machine delays acks by as much as the work they compete with;
// the tests of ack latency then check only that acks wait for no work.
const raceEnabled = true
