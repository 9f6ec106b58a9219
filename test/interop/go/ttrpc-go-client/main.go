// SPDX-License-Identifier: Apache-2.0

// ttrpc-go-client runs one interop case, with containerd's own ttrpc client (v1.1.1), against
// an Echo server (ours in C, or ttrpc-go-server as the control).
//
//	ttrpc-go-client --socket PATH CASE
//
// Prints "ok CASE" and exits 0, or "FAIL CASE: reason" and exits 1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"time"

	"cloak/interop/echo"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A case returns nil on pass; the error text becomes the FAIL reason.
type testCase func(t *tester) error

var cases = map[string]testCase{
	"echo":          caseEcho,
	"concurrent":    caseConcurrent,
	"near-limit":    caseNearLimit,
	"over-limit":    caseOverLimit,
	"unimplemented": caseUnimplemented,
	"deadline":      caseDeadline,
	"status":        caseStatus,
	"client-hangup": caseClientHangup,
	"framing":       caseFraming, // Go client only
}

// Every case must finish well within this; a server that hangs turns into a FAIL line.
const watchdog = 60 * time.Second

type tester struct {
	socket  string
	clients []*ttrpc.Client
}

type ctxKey int

const (
	keyTimeoutNano ctxKey = iota // int64: replaces the Request's timeout_nano
	keyRequestSize               // *int: receives the marshalled Request envelope's size
)

// intercept lets a case put an exact timeout_nano on the wire (independent of the
// context's own deadline, so the server's answer is observed rather than the client giving
// up) and learn the exact size of the Request frame the client sends.
func intercept(ctx context.Context, req *ttrpc.Request, resp *ttrpc.Response,
	info *ttrpc.UnaryClientInfo, invoker ttrpc.Invoker) error {
	if v, ok := ctx.Value(keyTimeoutNano).(int64); ok {
		req.TimeoutNano = v
	}
	if p, ok := ctx.Value(keyRequestSize).(*int); ok {
		*p = requestSize(req)
	}
	return invoker(ctx, req, resp)
}

func (t *tester) dial() (*ttrpc.Client, error) {
	conn, err := net.Dial("unix", t.socket)
	if err != nil {
		return nil, fmt.Errorf("connect %q: %w", t.socket, err)
	}
	c := ttrpc.NewClient(conn, ttrpc.WithUnaryClientInterceptor(intercept))
	t.clients = append(t.clients, c)
	return c, nil
}

func (t *tester) close() {
	for _, c := range t.clients {
		c.Close()
	}
}

func call(ctx context.Context, c *ttrpc.Client, req *echo.EchoRequest) (*echo.EchoResponse, error) {
	var resp echo.EchoResponse
	if err := c.Call(ctx, echo.Service, echo.Method, req, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// describe renders an error from Call with its status code when it has one.
func describe(err error) string {
	if err == nil {
		return "success"
	}
	if st, ok := status.FromError(err); ok {
		return fmt.Sprintf("status %d %s %q", int(st.Code()), st.Code(), st.Message())
	}
	return fmt.Sprintf("non-status error %q", err.Error())
}

// expectCode checks that err is a status with code want.
func expectCode(err error, want codes.Code) error {
	st, ok := status.FromError(err)
	if err == nil || !ok || st.Code() != want {
		return fmt.Errorf("want status %d %s, got %s", int(want), want, describe(err))
	}
	return nil
}

func samePayload(got, want []byte) error {
	if len(got) != len(want) {
		return fmt.Errorf("reply payload is %d bytes, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Errorf("reply payload differs at byte %d (got 0x%02x, want 0x%02x)", i, got[i], want[i])
		}
	}
	return nil
}

// checkEcho does one round trip of payload on c.
func checkEcho(ctx context.Context, c *ttrpc.Client, payload []byte) error {
	resp, err := call(ctx, c, &echo.EchoRequest{Payload: payload})
	if err != nil {
		return fmt.Errorf("echo of %d bytes: %s", len(payload), describe(err))
	}
	if err := samePayload(resp.Payload, payload); err != nil {
		return fmt.Errorf("echo of %d bytes: %v", len(payload), err)
	}
	return nil
}

func bytesOf(n int, seed byte) []byte {
	p := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range p {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		p[i] = byte(x)
	}
	return p
}

func within(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func caseEcho(t *tester) error {
	c, err := t.dial()
	if err != nil {
		return err
	}
	payloads := [][]byte{
		[]byte("hello"), {}, {0}, bytesOf(1000, 1), bytesOf(64<<10, 2), bytesOf(1<<20, 3),
	}
	for i, p := range payloads {
		// Alternate calls with and without a deadline: with one, the Request carries
		// timeout_nano (field 4), as containerd's calls with a deadline do.
		ctx, cancel := context.Background(), func() {}
		if i%2 == 1 {
			ctx, cancel = within(20 * time.Second)
		}
		err := checkEcho(ctx, c, p)
		cancel()
		if err != nil {
			return err
		}
	}
	// Many sequential calls on one connection (stream ids 1, 3, 5, ... keep growing).
	for i := 0; i < 200; i++ {
		if err := checkEcho(context.Background(), c, []byte(fmt.Sprintf("call %d", i))); err != nil {
			return fmt.Errorf("sequential call %d: %v", i, err)
		}
	}
	resp, err := call(context.Background(), c, &echo.EchoRequest{Payload: []byte("ignored"), ReplySize: 1000})
	if err != nil {
		return fmt.Errorf("reply_size 1000: %s", describe(err))
	}
	if err := samePayload(resp.Payload, echo.Pattern(1000)); err != nil {
		return fmt.Errorf("reply_size 1000: %v", err)
	}
	// A second connection is served at the same time as the first.
	c2, err := t.dial()
	if err != nil {
		return err
	}
	if err := checkEcho(context.Background(), c2, []byte("second connection")); err != nil {
		return fmt.Errorf("second connection: %v", err)
	}
	if err := checkEcho(context.Background(), c, []byte("first connection again")); err != nil {
		return fmt.Errorf("first connection after the second opened: %v", err)
	}
	return nil
}

func caseConcurrent(t *tester) error {
	const n = 64
	c, err := t.dial()
	if err != nil {
		return err
	}
	// Sleeps 0..200 ms spread over the calls and shuffled (deterministically), so the
	// replies come back in an order unrelated to the order the calls went out.
	sleeps := make([]uint32, n)
	for i := range sleeps {
		sleeps[i] = uint32(i * 200 / (n - 1))
	}
	for i := n - 1; i > 0; i-- {
		j := (i*7919 + 13) % (i + 1)
		sleeps[i], sleeps[j] = sleeps[j], sleeps[i]
	}
	var serial time.Duration
	for _, s := range sleeps {
		serial += time.Duration(s) * time.Millisecond
	}

	type result struct {
		i    int
		err  error
		done time.Time
	}
	results := make(chan result, n)
	ctx, cancel := within(30 * time.Second)
	defer cancel()
	start := time.Now()
	for i := 0; i < n; i++ {
		go func(i int) {
			payload := append([]byte(fmt.Sprintf("call %02d sleep %03d ", i, sleeps[i])), bytesOf(100+i, byte(i))...)
			resp, err := call(ctx, c, &echo.EchoRequest{Payload: payload, SleepMs: sleeps[i]})
			if err == nil {
				err = samePayload(resp.Payload, payload)
			} else {
				err = errors.New(describe(err))
			}
			results <- result{i, err, time.Now()}
		}(i)
	}
	var order []int
	for k := 0; k < n; k++ {
		r := <-results
		if r.err != nil {
			return fmt.Errorf("call %d (sleep %d ms): %v", r.i, sleeps[r.i], r.err)
		}
		order = append(order, r.i)
	}
	elapsed := time.Since(start)
	// Served one at a time the calls would take the sum of their sleeps (~6.4 s); in flight
	// together, about the longest one (200 ms). Half the serial time is a generous bound.
	if elapsed > serial/2 {
		return fmt.Errorf("%d calls took %v in all (sum of sleeps %v): the server does not run calls on one connection concurrently",
			n, elapsed.Round(time.Millisecond), serial)
	}
	// The replies must come back roughly in sleep order, not request order.
	if sort.SliceIsSorted(order, func(a, b int) bool { return order[a] < order[b] }) {
		return fmt.Errorf("replies came back in exactly the request order although sleeps were shuffled")
	}
	return nil
}

// requestSize is the size of the Request envelope as the client marshals it: the data
// length in the frame header.
func requestSize(req *ttrpc.Request) int {
	b, err := echoCodecMarshal(req)
	if err != nil {
		return -1
	}
	return len(b)
}

// echoRequestForFrame returns an EchoRequest whose Request frame data is exactly n bytes
// when sent with timeout_nano = tn (the interceptor puts that exact value on the wire).
func echoRequestForFrame(n int, tn int64) (*echo.EchoRequest, error) {
	p := n - 64
	for try := 0; try < 8; try++ {
		req := &echo.EchoRequest{Payload: make([]byte, p)}
		inner, err := echoCodecMarshal(req)
		if err != nil {
			return nil, err
		}
		size := requestSize(&ttrpc.Request{Service: echo.Service, Method: echo.Method, Payload: inner, TimeoutNano: tn})
		if size == n {
			copy(req.Payload, bytesOf(p, 7))
			return req, nil
		}
		p += n - size
	}
	return nil, fmt.Errorf("cannot size a request frame to exactly %d bytes", n)
}

// sized sends a request whose frame is exactly n bytes and checks that it was.
func sized(c *ttrpc.Client, n int) (*echo.EchoRequest, *echo.EchoResponse, error) {
	const tn = int64(20 * time.Second)
	req, err := echoRequestForFrame(n, tn)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := within(30 * time.Second)
	defer cancel()
	var sent int
	ctx = context.WithValue(context.WithValue(ctx, keyTimeoutNano, tn), keyRequestSize, &sent)
	resp, err := call(ctx, c, req)
	if sent != n {
		return nil, nil, fmt.Errorf("internal: meant to send a %d-byte frame, sent %d", n, sent)
	}
	return req, resp, err
}

func caseNearLimit(t *tester) error {
	c, err := t.dial()
	if err != nil {
		return err
	}
	for _, n := range []int{echo.MaxFrame - 16, echo.MaxFrame} {
		req, resp, err := sized(c, n)
		if err != nil {
			return fmt.Errorf("request frame of %d bytes (limit %d, inclusive): %s", n, echo.MaxFrame, describe(err))
		}
		if err := samePayload(resp.Payload, req.Payload); err != nil {
			return fmt.Errorf("request frame of %d bytes: %v", n, err)
		}
	}
	// A reply just under the limit: the Response frame is reply_size + 8 bytes (+2 for an
	// empty status, which Go's server omits), so leave a margin.
	n := echo.MaxFrame - 64
	resp, err := call(context.Background(), c, &echo.EchoRequest{ReplySize: uint32(n)})
	if err != nil {
		return fmt.Errorf("reply_size %d: %s", n, describe(err))
	}
	if err := samePayload(resp.Payload, echo.Pattern(n)); err != nil {
		return fmt.Errorf("reply_size %d: %v", n, err)
	}
	if err := checkEcho(context.Background(), c, []byte("after near-limit")); err != nil {
		return err
	}
	return nil
}

func caseOverLimit(t *tester) error {
	c, err := t.dial()
	if err != nil {
		return err
	}
	// Go's client does not refuse an oversized request: it sends it. Go's server discards
	// the data and answers RESOURCE_EXHAUSTED on that stream, keeping the connection.
	for _, n := range []int{echo.MaxFrame + 1, 6 << 20} {
		_, _, err := sized(c, n)
		if err := expectCode(err, codes.ResourceExhausted); err != nil {
			return fmt.Errorf("request frame of %d bytes (limit %d): %v", n, echo.MaxFrame, err)
		}
		if err := checkEcho(context.Background(), c, []byte("after oversized request")); err != nil {
			return fmt.Errorf("same connection after a %d-byte request: %v", n, err)
		}
	}
	return oversizeReply(t)
}

func caseUnimplemented(t *tester) error {
	c, err := t.dial()
	if err != nil {
		return err
	}
	ctx := context.Background()
	var resp echo.EchoResponse
	err = c.Call(ctx, "cloak.test.v1.NoSuchService", echo.Method, &echo.EchoRequest{}, &resp)
	if err := expectCode(err, codes.Unimplemented); err != nil {
		return fmt.Errorf("unknown service: %v", err)
	}
	err = c.Call(ctx, echo.Service, "NoSuchMethod", &echo.EchoRequest{}, &resp)
	if err := expectCode(err, codes.Unimplemented); err != nil {
		return fmt.Errorf("unknown method: %v", err)
	}
	if err := checkEcho(ctx, c, []byte("after unimplemented")); err != nil {
		return err
	}
	return nil
}

func caseDeadline(t *tester) error {
	c, err := t.dial()
	if err != nil {
		return err
	}
	// The server's side: timeout_nano = 100 ms on a 3000 ms sleep, while the client itself
	// would wait 10 s. The server must answer DEADLINE_EXCEEDED when the 100 ms pass.
	ctx, cancel := within(10 * time.Second)
	defer cancel()
	start := time.Now()
	_, err = call(context.WithValue(ctx, keyTimeoutNano, int64(100*time.Millisecond)), c,
		&echo.EchoRequest{Payload: []byte("slow"), SleepMs: 3000})
	elapsed := time.Since(start)
	if err := expectCode(err, codes.DeadlineExceeded); err != nil {
		return fmt.Errorf("timeout_nano 100 ms on a 3000 ms sleep: %v (after %v)", err, elapsed.Round(time.Millisecond))
	}
	if elapsed > 1500*time.Millisecond {
		return fmt.Errorf("timeout_nano 100 ms on a 3000 ms sleep: DEADLINE_EXCEEDED only after %v", elapsed.Round(time.Millisecond))
	}
	if err := checkEcho(context.Background(), c, []byte("after deadline")); err != nil {
		return err
	}
	// The client's side, as containerd does it: a context with a 100 ms deadline. Go's
	// client gives up by itself (context.DeadlineExceeded) and drops the late answer.
	ctx2, cancel2 := within(100 * time.Millisecond)
	defer cancel2()
	start = time.Now()
	_, err = call(ctx2, c, &echo.EchoRequest{Payload: []byte("slow"), SleepMs: 3000})
	elapsed = time.Since(start)
	if st, ok := status.FromError(err); !errors.Is(err, context.DeadlineExceeded) && !(ok && st.Code() == codes.DeadlineExceeded) {
		return fmt.Errorf("100 ms context on a 3000 ms sleep: want a deadline error, got %s", describe(err))
	}
	if elapsed > 1500*time.Millisecond {
		return fmt.Errorf("100 ms context on a 3000 ms sleep: gave up only after %v", elapsed.Round(time.Millisecond))
	}
	if err := checkEcho(context.Background(), c, []byte("after client deadline")); err != nil {
		return err
	}
	return nil
}

func caseStatus(t *tester) error {
	c, err := t.dial()
	if err != nil {
		return err
	}
	for _, want := range []struct {
		code codes.Code
		msg  string
	}{
		{codes.NotFound, "no such thing"},
		{codes.FailedPrecondition, "état: ünïcode ✓, \"quoted\"\n2nd line"},
		{codes.Internal, ""},
	} {
		_, err := call(context.Background(), c, &echo.EchoRequest{
			Payload: []byte("unused"), FailCode: int32(want.code), FailMessage: want.msg})
		st, ok := status.FromError(err)
		if err == nil || !ok || st.Code() != want.code || st.Message() != want.msg {
			return fmt.Errorf("fail_code %d fail_message %q: got %s", int(want.code), want.msg, describe(err))
		}
	}
	if err := checkEcho(context.Background(), c, []byte("after status")); err != nil {
		return err
	}
	return nil
}

func main() {
	socket := flag.String("socket", "", "unix socket path of the Echo server")
	flag.Usage = func() {
		names := make([]string, 0, len(cases))
		for n := range cases {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(os.Stderr, "usage: ttrpc-go-client --socket PATH CASE\ncases: %s\n", strings.Join(names, " "))
	}
	flag.Parse()
	if *socket == "" || flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	name := flag.Arg(0)
	fn, ok := cases[name]
	if !ok {
		fmt.Printf("FAIL %s: unknown case\n", name)
		os.Exit(1)
	}
	time.AfterFunc(watchdog, func() {
		fmt.Printf("FAIL %s: still running after %v (server hung?)\n", name, watchdog)
		os.Exit(1)
	})
	t := &tester{socket: *socket}
	err := fn(t)
	t.close()
	if err != nil {
		fmt.Printf("FAIL %s: %v\n", name, err)
		os.Exit(1)
	}
	fmt.Printf("ok %s\n", name)
}
