package storage

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkWriteThroughput measures creates through the batching writer with
// 16 concurrent writers (BENCH_WRITERS overrides), as the API server's
// handlers issue them: go test -run X -bench WriteThroughput ./storage/
func BenchmarkWriteThroughput(b *testing.B) {
	s := newStore(b)
	data := make([]byte, 1024)
	for i := range data {
		data[i] = 'x'
	}
	var n atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < benchWriters(); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := n.Add(1)
				if i > int64(b.N) {
					return
				}
				k := Key{Resource: "/configmaps", Namespace: "bench", Name: fmt.Sprint("cm-", i)}
				_, err := s.Write(context.Background(), "root", Write{Op: Create, Key: k, Encode: func(rv int64) ([]byte, error) {
					return append([]byte(fmt.Sprintf(`{"rv":%d,"d":"`, rv)), append(data, '"', '}')...), nil
				}})
				if err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "writes/s")
}

func benchWriters() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_WRITERS")); err == nil {
		return n
	}
	return 16
}
