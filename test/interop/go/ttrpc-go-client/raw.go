// SPDX-License-Identifier: Apache-2.0

// The parts of the cases that need frames the ttrpc client will not send or cannot survive.
package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"cloak/interop/echo"

	"github.com/containerd/ttrpc"
	"github.com/gogo/protobuf/proto"
	"google.golang.org/grpc/codes"
)

var echoCodecMarshal = proto.Marshal

// allowOversizeReplyEnv: set to 1 only for the Go-server control. Go's server sends a
// Response frame over the limit when the handler returns that much; a correct server must
// not (see oversizeReply).
const allowOversizeReplyEnv = "TTRPC_INTEROP_ACCEPT_OVERSIZE_REPLY"

func rawDial(t *tester) (net.Conn, error) {
	conn, err := net.Dial("unix", t.socket)
	if err != nil {
		return nil, fmt.Errorf("connect %q: %w", t.socket, err)
	}
	return conn, nil
}

func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// readResponse reads one Response frame for streamID within d.
func readResponse(conn net.Conn, streamID uint32, d time.Duration) (*ttrpc.Response, error) {
	conn.SetReadDeadline(time.Now().Add(d))
	defer conn.SetReadDeadline(time.Time{})
	h, data, err := echo.ReadFrame(conn, echo.MaxFrame)
	if err != nil {
		return nil, err
	}
	if h.Type != echo.TypeReply || h.StreamID != streamID {
		return nil, fmt.Errorf("got a frame of type %d on stream %d, want a Response (2) on stream %d",
			h.Type, h.StreamID, streamID)
	}
	var resp ttrpc.Response
	if err := proto.Unmarshal(data, &resp); err != nil {
		return nil, fmt.Errorf("undecodable Response on stream %d: %v", streamID, err)
	}
	return &resp, nil
}

// rawEcho does one echo round trip by hand on conn.
func rawEcho(conn net.Conn, streamID uint32, payload []byte) error {
	frame, err := echo.RequestFrame(streamID, echo.Service, echo.Method, &echo.EchoRequest{Payload: payload})
	if err != nil {
		return err
	}
	if _, err := conn.Write(frame); err != nil {
		return err
	}
	resp, err := readResponse(conn, streamID, 10*time.Second)
	if err != nil {
		return err
	}
	if resp.Status != nil && resp.Status.Code != 0 {
		return fmt.Errorf("echo answered status %d %q", resp.Status.Code, resp.Status.Message)
	}
	var er echo.EchoResponse
	if err := proto.Unmarshal(resp.Payload, &er); err != nil {
		return fmt.Errorf("undecodable EchoResponse: %v", err)
	}
	return samePayload(er.Payload, payload)
}

// echoOnNewConnection proves the server still serves: a fresh ttrpc client gets answers.
func echoOnNewConnection(t *tester, what string) error {
	c, err := t.dial()
	if err != nil {
		return fmt.Errorf("%s: %v", what, err)
	}
	ctx, cancel := within(10 * time.Second)
	defer cancel()
	for i := 0; i < 3; i++ {
		if err := checkEcho(ctx, c, []byte(fmt.Sprintf("%s %d", what, i))); err != nil {
			return fmt.Errorf("%s: %v", what, err)
		}
	}
	return nil
}

// oversizeReply asks for a reply over the limit (reply_size = 4 MiB + 1 KiB) on a raw
// connection, because Go's ttrpc 1.1.1 client cannot survive the answer Go's server gives:
// the server sends the oversized Response frame as is, and the client's receive loop then
// panics slicing its nil buffer (client.go: p[:mh.Length]), taking the whole process down.
// So a correct server must refuse to send it: answer the call with an error status, or close
// the connection. An oversized frame is accepted only with TTRPC_INTEROP_ACCEPT_OVERSIZE_REPLY=1
// (the Go-server control), and then the connection must still work after it.
func oversizeReply(t *tester) error {
	const size = echo.MaxFrame + 1024
	conn, err := rawDial(t)
	if err != nil {
		return err
	}
	defer conn.Close()
	frame, err := echo.RequestFrame(1, echo.Service, echo.Method, &echo.EchoRequest{ReplySize: size})
	if err != nil {
		return err
	}
	if _, err := conn.Write(frame); err != nil {
		return fmt.Errorf("reply_size %d: sending the request: %v", size, err)
	}
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	h, data, err := echo.ReadFrame(conn, echo.MaxFrame)
	conn.SetReadDeadline(time.Time{})
	closed := false
	switch {
	case errors.Is(err, echo.ErrOversize):
		if os.Getenv(allowOversizeReplyEnv) != "1" {
			return fmt.Errorf("reply_size %d: the server sent a %d-byte Response frame (limit %d); "+
				"a Go ttrpc 1.1.1 client panics on that, so the server must answer an error status instead",
				size, h.Length, echo.MaxFrame)
		}
		fmt.Fprintf(os.Stderr, "note: reply_size %d: server sent an oversized %d-byte Response frame (Go's behaviour)\n",
			size, h.Length)
		if _, err := io.CopyN(io.Discard, conn, int64(h.Length)); err != nil {
			return fmt.Errorf("reply_size %d: reading the oversized frame: %v", size, err)
		}
	case isClosed(err):
		fmt.Fprintf(os.Stderr, "note: reply_size %d: server closed the connection\n", size)
		closed = true
	case err != nil:
		return fmt.Errorf("reply_size %d: %v", size, err)
	default:
		if h.Type != echo.TypeReply || h.StreamID != 1 {
			return fmt.Errorf("reply_size %d: got a frame of type %d on stream %d, want a Response on stream 1",
				size, h.Type, h.StreamID)
		}
		var resp ttrpc.Response
		if err := proto.Unmarshal(data, &resp); err != nil {
			return fmt.Errorf("reply_size %d: undecodable Response: %v", size, err)
		}
		if resp.Status == nil || resp.Status.Code == 0 {
			return fmt.Errorf("reply_size %d: answered OK with a %d-byte frame, want an error status", size, h.Length)
		}
		fmt.Fprintf(os.Stderr, "note: reply_size %d: server answered status %d %s %q\n",
			size, resp.Status.Code, codes.Code(resp.Status.Code), resp.Status.Message)
	}
	if !closed {
		// Still usable, or closed cleanly right after answering: either is fine.
		err := rawEcho(conn, 3, []byte("same connection after oversized reply"))
		if err == nil {
			return nil
		}
		if !isClosed(err) {
			return fmt.Errorf("same connection after reply_size %d: %v", size, err)
		}
	}
	return echoOnNewConnection(t, "new connection after reply_size over the limit")
}

// caseClientHangup: peers that vanish mid-frame or send junk must not take the server down.
func caseClientHangup(t *tester) error {
	valid, err := echo.RequestFrame(1, echo.Service, echo.Method,
		&echo.EchoRequest{Payload: bytesOf(200, 9)})
	if err != nil {
		return err
	}
	for round := 0; round < 3; round++ {
		// Half of a valid Request frame, then close.
		conn, err := rawDial(t)
		if err != nil {
			return fmt.Errorf("round %d: %v", round, err)
		}
		conn.Write(valid[:len(valid)/2])
		conn.Close()

		// Half of a header, then close.
		if conn, err = rawDial(t); err != nil {
			return fmt.Errorf("round %d: %v", round, err)
		}
		conn.Write(valid[:5])
		conn.Close()

		// A header announcing ~2 GiB, a little data, then close.
		if conn, err = rawDial(t); err != nil {
			return fmt.Errorf("round %d: %v", round, err)
		}
		junk := echo.Header{Length: 0x7ffffff0, StreamID: 1, Type: echo.TypeRequest}.Bytes()
		conn.Write(append(junk, bytesOf(4096, 10)...))
		conn.Close()

		// Connect and close without a byte.
		if conn, err = rawDial(t); err != nil {
			return fmt.Errorf("round %d: %v", round, err)
		}
		conn.Close()

		// A well-framed Request whose data is not a valid envelope (field 1 claims 127
		// bytes, 3 follow). The server should answer an error status on that stream and
		// keep the connection (Go: INVALID_ARGUMENT "unmarshal request error"); closing
		// the connection is tolerated; saying nothing is not: the caller would hang.
		if conn, err = rawDial(t); err != nil {
			return fmt.Errorf("round %d: %v", round, err)
		}
		conn.Write(echo.Frame(5, echo.TypeRequest, []byte{0x0a, 0x7f, 'a', 'b', 'c'}))
		resp, err := readResponse(conn, 5, 5*time.Second)
		switch {
		case err == nil && (resp.Status == nil || resp.Status.Code == 0):
			conn.Close()
			return fmt.Errorf("undecodable Request envelope: answered OK")
		case err == nil:
			if err := rawEcho(conn, 7, []byte("after undecodable request")); err != nil && !isClosed(err) {
				conn.Close()
				return fmt.Errorf("same connection after an undecodable Request envelope: %v", err)
			}
		case isClosed(err):
		default:
			conn.Close()
			return fmt.Errorf("undecodable Request envelope: want an error status or a closed connection, got %v", err)
		}
		conn.Close()
	}
	// The server survived all of it.
	return echoOnNewConnection(t, "normal client after the hang-ups")
}
