// SPDX-License-Identifier: Apache-2.0

// ttrpc-go-server serves cloak.test.v1.Echo/Echo with containerd's own ttrpc (v1.1.1), so
// our C client can be checked against the reference server.
//
//	ttrpc-go-server --socket PATH
//
// Prints "ready" once listening; exits 0 on SIGTERM or SIGINT and removes the socket.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"cloak/interop/echo"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func handle(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
	var req echo.EchoRequest
	if err := unmarshal(&req); err != nil {
		return nil, err
	}
	if req.SleepMs > 0 {
		// Each call runs in its own goroutine, so sleeping here holds up nobody else.
		t := time.NewTimer(time.Duration(req.SleepMs) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return nil, status.Error(codes.DeadlineExceeded, "deadline exceeded while sleeping")
			}
			return nil, status.Error(codes.Canceled, "canceled while sleeping")
		}
	}
	if req.FailCode != 0 {
		return nil, status.Error(codes.Code(req.FailCode), req.FailMessage)
	}
	if req.ReplySize > 0 {
		return &echo.EchoResponse{Payload: echo.Pattern(int(req.ReplySize))}, nil
	}
	return &echo.EchoResponse{Payload: req.Payload}, nil
}

func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%q exists and is not a socket", path)
	}
	return os.Remove(path)
}

func main() {
	socket := flag.String("socket", "", "unix socket path to listen on")
	flag.Parse()
	if *socket == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: ttrpc-go-server --socket PATH")
		os.Exit(2)
	}
	if err := removeStaleSocket(*socket); err != nil {
		fmt.Fprintf(os.Stderr, "ttrpc-go-server: %v\n", err)
		os.Exit(1)
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	l, err := net.Listen("unix", *socket)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ttrpc-go-server: listen: %v\n", err)
		os.Exit(1)
	}
	// The same peer check containerd and the runc shim use.
	srv, err := ttrpc.NewServer(ttrpc.WithServerHandshaker(ttrpc.UnixSocketRequireSameUser()))
	if err != nil {
		fmt.Fprintf(os.Stderr, "ttrpc-go-server: %v\n", err)
		os.Exit(1)
	}
	srv.Register(echo.Service, map[string]ttrpc.Method{echo.Method: handle})

	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), l) }()
	fmt.Println("ready")

	code := 0
	select {
	case <-sigs:
	case err := <-served:
		fmt.Fprintf(os.Stderr, "ttrpc-go-server: serve: %v\n", err)
		code = 1
	}
	srv.Close()
	os.Remove(*socket)
	os.Exit(code)
}
