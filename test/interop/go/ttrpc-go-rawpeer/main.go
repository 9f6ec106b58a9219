// SPDX-License-Identifier: Apache-2.0

// ttrpc-go-rawpeer is a misbehaving ttrpc server, for testing how our client copes.
//
//	ttrpc-go-rawpeer --socket PATH --mode half-response
//
// half-response: for each connection, read one Request frame, write the first half of a
// valid Response frame for it (the whole header and part of the data), then close.
//
// Prints "ready" once listening; exits 0 on SIGTERM or SIGINT and removes the socket.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"cloak/interop/echo"
)

func halfResponse(conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	h, _, err := echo.ReadFrame(conn, echo.MaxFrame)
	if err != nil {
		fmt.Fprintf(os.Stderr, "rawpeer: reading a request: %v\n", err)
		return
	}
	frame, err := echo.ResponseFrame(h.StreamID, &echo.EchoResponse{Payload: echo.Pattern(100)})
	if err != nil {
		fmt.Fprintf(os.Stderr, "rawpeer: %v\n", err)
		return
	}
	n := len(frame) / 2
	if _, err := conn.Write(frame[:n]); err != nil {
		fmt.Fprintf(os.Stderr, "rawpeer: writing: %v\n", err)
		return
	}
	fmt.Fprintf(os.Stderr, "rawpeer: stream %d: wrote %d of %d bytes of a Response frame, closing\n",
		h.StreamID, n, len(frame))
}

func main() {
	socket := flag.String("socket", "", "unix socket path to listen on")
	mode := flag.String("mode", "", "misbehaviour: half-response")
	flag.Parse()
	if *socket == "" || flag.NArg() != 0 || *mode != "half-response" {
		fmt.Fprintln(os.Stderr, "usage: ttrpc-go-rawpeer --socket PATH --mode half-response")
		os.Exit(2)
	}
	if fi, err := os.Lstat(*socket); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(*socket)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	l, err := net.Listen("unix", *socket)
	if err != nil {
		fmt.Fprintf(os.Stderr, "rawpeer: listen: %v\n", err)
		os.Exit(1)
	}
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go halfResponse(conn)
		}
	}()
	fmt.Println("ready")
	<-sigs
	l.Close()
	os.Remove(*socket)
}
