package docker

// Settle waits for what the executor does in the background: the removal
// of attempts that Run returned from, for tests that look for what an
// attempt left.
func (e *Executor) Settle() { e.waitBackground() }

// WaitHolders waits until the holders that the pool is starting in the
// background are started, for benchmarks that keep that work out of
// what they time. The attempts' removals, which start them, come first.
func (e *Executor) WaitHolders() {
	e.waitBackground()
	if e.nets != nil {
		e.nets.warmers.Wait()
	}
}
