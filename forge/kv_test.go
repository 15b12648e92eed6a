package forge_test

import (
	"context"
	"maps"
	"sync"
)

// memKV is a KV in memory that can be told to fail.
type memKV struct {
	mu     sync.Mutex
	m      map[string]string
	getErr error
	putErr error
}

func newKV() *memKV { return &memKV{m: map[string]string{}} }

func (kv *memKV) Get(ctx context.Context, key string) (string, bool, error) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	if kv.getErr != nil {
		return "", false, kv.getErr
	}
	v, ok := kv.m[key]
	return v, ok, nil
}

func (kv *memKV) Put(ctx context.Context, key, value string) error {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	if kv.putErr != nil {
		return kv.putErr
	}
	kv.m[key] = value
	return nil
}

func (kv *memKV) snapshot() map[string]string {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	return maps.Clone(kv.m)
}
