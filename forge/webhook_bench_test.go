package forge

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkWebhookAccept posts signed push deliveries to the receiver
// over loopback HTTP, with the store on disk, from 8 clients at once: the
// deliveries accepted per second (each stored before its 202) and the
// answers' p50 and p99 latency at that load.
func BenchmarkWebhookAccept(b *testing.B) {
	db := openStore(b)
	rc, err := NewReceiver(testSecret, db, ReceiverOptions{})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	body := corpus(b, "push.with-new-branch.json")
	sig := sign(testSecret, body)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	var n atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism(4) // 4 × GOMAXPROCS clients
	t0 := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			id := fmt.Sprintf("bench-%d", n.Add(1))
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/webhooks/github", bytesReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-GitHub-Event", "push")
			req.Header.Set("X-GitHub-Delivery", id)
			req.Header.Set("X-Hub-Signature-256", sig)
			s := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			resp.Body.Close()
			mine = append(mine, time.Since(s))
			if resp.StatusCode != http.StatusAccepted {
				b.Errorf("answer %d", resp.StatusCode)
				return
			}
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	elapsed := time.Since(t0)
	slices.Sort(lat)
	if len(lat) == 0 {
		return
	}
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}
