package local

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// onThreadOfItsOwn runs f on a new goroutine locked to an OS thread that
// ends when f returns, so that what f changes in its thread (credentials,
// cgroups) never reaches other goroutines. The runtime ends a thread
// whose goroutine exits locked to it, except the main thread, which it
// parks for good instead: a goroutine that finds itself there holds it
// until f has a thread of its own.
func onThreadOfItsOwn(f func()) {
	go func() {
		runtime.LockOSThread() // never unlocked, but on the main thread
		if unix.Gettid() != unix.Getpid() {
			f()
			return
		}
		locked := make(chan struct{})
		go func() {
			// Not on the main thread: this goroutine holds it.
			runtime.LockOSThread()
			close(locked)
			f()
		}()
		<-locked
		runtime.UnlockOSThread()
	}()
}
