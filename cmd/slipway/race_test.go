//go:build race

package main

// raceBuild says that the tests were built with the race detector.
const raceBuild = true
