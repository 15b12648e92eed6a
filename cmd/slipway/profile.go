package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
)

// profile starts what SLIPWAY_CPUPROFILE, SLIPWAY_MEMPROFILE and
// SLIPWAY_TRACE ask for, a CPU profile, a profile of every allocation
// after package initialization (go tool pprof -sample_index=alloc_space)
// and an execution trace (go tool trace) of the whole command, each
// written to the file the variable names; the returned func stops them. They are how bench/run.sh's numbers are
// explained.
func profile() (stop func()) {
	var stops []func()
	if file := os.Getenv("SLIPWAY_CPUPROFILE"); file != "" {
		if f, err := os.Create(file); err != nil {
			fmt.Fprintln(os.Stderr, "slipway: SLIPWAY_CPUPROFILE:", err)
		} else if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "slipway: SLIPWAY_CPUPROFILE:", err)
			f.Close()
		} else {
			stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
		}
	}
	if file := os.Getenv("SLIPWAY_MEMPROFILE"); file != "" {
		runtime.MemProfileRate = 1
		stops = append(stops, func() {
			f, err := os.Create(file)
			if err == nil {
				err = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "slipway: SLIPWAY_MEMPROFILE:", err)
			}
		})
	}
	if file := os.Getenv("SLIPWAY_TRACE"); file != "" {
		if f, err := os.Create(file); err != nil {
			fmt.Fprintln(os.Stderr, "slipway: SLIPWAY_TRACE:", err)
		} else if err := trace.Start(f); err != nil {
			fmt.Fprintln(os.Stderr, "slipway: SLIPWAY_TRACE:", err)
			f.Close()
		} else {
			stops = append(stops, func() { trace.Stop(); f.Close() })
		}
	}
	return func() {
		for _, s := range stops {
			s()
		}
	}
}
