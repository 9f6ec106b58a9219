// SPDX-License-Identifier: Apache-2.0

// ttrpc-go-bench drives Echo calls against a server with containerd's ttrpc client.
//
//	ttrpc-go-bench --socket PATH --concurrency N --duration SECONDS [--payload BYTES]
//	               [--connections M] [--warmup SECONDS]
//
// N goroutines call Echo back to back. By default they share ONE client connection, as
// containerd does with a shim; --connections M spreads them over M connections. After the
// warm-up, calls are counted and timed for --duration seconds, and one JSON line is printed:
//
//	{"concurrency":N,"requests":R,"rps":X,"p50_us":A,"p99_us":B,"connections":M,"payload":P,"errors":E}
//
// Exits 1 if any call failed (a correctness problem, not a timing one).
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"cloak/interop/echo"

	"github.com/containerd/ttrpc"
)

const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseStop
)

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

func main() {
	socket := flag.String("socket", "", "unix socket path of the Echo server")
	concurrency := flag.Int("concurrency", 1, "goroutines calling Echo")
	duration := flag.Float64("duration", 5, "measured seconds")
	payload := flag.Int("payload", 16, "request payload bytes")
	connections := flag.Int("connections", 1, "client connections the goroutines share")
	warmup := flag.Float64("warmup", -1, "warm-up seconds (default: duration/5, at most 1)")
	flag.Parse()
	if *socket == "" || flag.NArg() != 0 || *concurrency < 1 || *duration <= 0 ||
		*connections < 1 || *payload < 0 {
		fmt.Fprintln(os.Stderr, "usage: ttrpc-go-bench --socket PATH --concurrency N --duration SECONDS [--payload BYTES] [--connections M] [--warmup SECONDS]")
		os.Exit(2)
	}
	if *warmup < 0 {
		*warmup = *duration / 5
		if *warmup > 1 {
			*warmup = 1
		}
	}
	if *connections > *concurrency {
		*connections = *concurrency
	}

	clients := make([]*ttrpc.Client, *connections)
	for i := range clients {
		conn, err := net.Dial("unix", *socket)
		if err != nil {
			fmt.Fprintf(os.Stderr, "ttrpc-go-bench: connect %q: %v\n", *socket, err)
			os.Exit(1)
		}
		clients[i] = ttrpc.NewClient(conn)
		defer clients[i].Close()
	}

	var (
		phase    int32 = phaseWarmup
		errs     int64
		firstErr atomic.Value
		wg       sync.WaitGroup
		lats     = make([][]time.Duration, *concurrency)
		body     = make([]byte, *payload)
	)
	for i := range body {
		body[i] = byte(i)
	}
	for g := 0; g < *concurrency; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			c := clients[g%len(clients)]
			req := &echo.EchoRequest{Payload: body}
			mine := make([]time.Duration, 0, 1<<16)
			for {
				ph := atomic.LoadInt32(&phase)
				if ph == phaseStop {
					break
				}
				var resp echo.EchoResponse
				start := time.Now()
				err := c.Call(context.Background(), echo.Service, echo.Method, req, &resp)
				lat := time.Since(start)
				if err == nil && len(resp.Payload) != len(body) {
					err = fmt.Errorf("reply payload %d bytes, want %d", len(resp.Payload), len(body))
				}
				if err != nil {
					atomic.AddInt64(&errs, 1)
					firstErr.CompareAndSwap(nil, err.Error())
					time.Sleep(time.Millisecond)
					continue
				}
				// Count only calls that started and ended inside the measured window.
				if ph == phaseMeasure && atomic.LoadInt32(&phase) == phaseMeasure {
					mine = append(mine, lat)
				}
			}
			lats[g] = mine
		}(g)
	}

	time.Sleep(time.Duration(*warmup * float64(time.Second)))
	atomic.StoreInt32(&phase, phaseMeasure)
	start := time.Now()
	time.Sleep(time.Duration(*duration * float64(time.Second)))
	atomic.StoreInt32(&phase, phaseStop)
	measured := time.Since(start)
	wg.Wait()

	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	fmt.Printf("{\"concurrency\":%d,\"requests\":%d,\"rps\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,"+
		"\"connections\":%d,\"payload\":%d,\"errors\":%d}\n",
		*concurrency, len(all), float64(len(all))/measured.Seconds(),
		us(percentile(all, 0.50)), us(percentile(all, 0.99)), *connections, *payload, errs)
	if errs > 0 {
		fmt.Fprintf(os.Stderr, "ttrpc-go-bench: %d calls failed, first: %v\n", errs, firstErr.Load())
		os.Exit(1)
	}
}
