// SPDX-License-Identifier: Apache-2.0

// caseFraming (Go client only, beyond the shared case list): how a server reads the byte
// stream, checked with hand-made frames on one raw connection.
package main

import (
	"fmt"
	"net"
	"time"

	"cloak/interop/echo"

	"github.com/containerd/ttrpc"
	"github.com/gogo/protobuf/proto"
)

func echoFrame(streamID uint32, payload string) ([]byte, error) {
	return echo.RequestFrame(streamID, echo.Service, echo.Method, &echo.EchoRequest{Payload: []byte(payload)})
}

// expectEchoReply reads the next frame and checks it is the successful echo of payload on
// streamID.
func expectEchoReply(conn net.Conn, streamID uint32, payload string) error {
	resp, err := readResponse(conn, streamID, 5*time.Second)
	if err != nil {
		return err
	}
	return checkEchoResponse(resp, payload)
}

func checkEchoResponse(resp *ttrpc.Response, payload string) error {
	if resp.Status != nil && resp.Status.Code != 0 {
		return fmt.Errorf("answered status %d %q", resp.Status.Code, resp.Status.Message)
	}
	var er echo.EchoResponse
	if err := proto.Unmarshal(resp.Payload, &er); err != nil {
		return fmt.Errorf("undecodable EchoResponse: %v", err)
	}
	return samePayload(er.Payload, []byte(payload))
}

func caseFraming(t *tester) error {
	conn, err := rawDial(t)
	if err != nil {
		return err
	}
	defer conn.Close()

	// 1. Frames of other types are ignored without an answer: ttrpc 1.2's Data (3, with
	//    flags), a Response (2) sent to the server, an unknown type. Only stream 7 answers.
	b := echo.Header{Length: 3, StreamID: 1, Type: 3, Flags: 0x01}.Bytes() // remote-closed
	b = append(b, 0x0a, 0x01, 'x')
	b = append(b, echo.Frame(3, echo.TypeReply, nil)...)
	b = append(b, echo.Frame(5, 0x7f, []byte("junk"))...)
	f, err := echoFrame(7, "after ignored frames")
	if err != nil {
		return err
	}
	if _, err := conn.Write(append(b, f...)); err != nil {
		return err
	}
	if err := expectEchoReply(conn, 7, "after ignored frames"); err != nil {
		return fmt.Errorf("request after frames of type 3, 2 and 0x7f: %v (those must be ignored)", err)
	}

	// 2. An even (server-side) stream id: INVALID_ARGUMENT on that id, connection kept.
	if f, err = echoFrame(8, "even"); err != nil {
		return err
	}
	conn.Write(f)
	resp, err := readResponse(conn, 8, 5*time.Second)
	if err != nil {
		return fmt.Errorf("request on even stream 8: %v", err)
	}
	if resp.Status == nil || resp.Status.Code != 3 {
		return fmt.Errorf("request on even stream 8: want status 3 InvalidArgument (Go: \"StreamID must be odd for client initiated streams\"), got %v",
			resp.Status)
	}

	// 3. Two requests in one write: both answered, in any order.
	f1, _ := echoFrame(9, "pipelined 1")
	f2, _ := echoFrame(11, "pipelined 2")
	if _, err := conn.Write(append(f1, f2...)); err != nil {
		return err
	}
	want := map[uint32]string{9: "pipelined 1", 11: "pipelined 2"}
	for len(want) > 0 {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		h, data, err := echo.ReadFrame(conn, echo.MaxFrame)
		conn.SetReadDeadline(time.Time{})
		if err != nil {
			return fmt.Errorf("two requests in one write: %v", err)
		}
		payload, ok := want[h.StreamID]
		if h.Type != echo.TypeReply || !ok {
			return fmt.Errorf("two requests in one write: unexpected frame type %d on stream %d", h.Type, h.StreamID)
		}
		var r ttrpc.Response
		if err := proto.Unmarshal(data, &r); err != nil {
			return fmt.Errorf("two requests in one write: undecodable Response: %v", err)
		}
		if err := checkEchoResponse(&r, payload); err != nil {
			return fmt.Errorf("two requests in one write, stream %d: %v", h.StreamID, err)
		}
		delete(want, h.StreamID)
	}

	// 4. A request dribbled one byte per write: the server reassembles it.
	if f, err = echoFrame(13, "one byte at a time"); err != nil {
		return err
	}
	for i := range f {
		if _, err := conn.Write(f[i : i+1]); err != nil {
			return fmt.Errorf("dribbling byte %d: %v", i, err)
		}
		time.Sleep(time.Millisecond)
	}
	if err := expectEchoReply(conn, 13, "one byte at a time"); err != nil {
		return fmt.Errorf("request written one byte at a time: %v", err)
	}

	// 5. A zero-length Request (all fields default: service "" and method ""): an error
	//    status (Go: UNIMPLEMENTED "service "), and the connection goes on.
	conn.Write(echo.Frame(15, echo.TypeRequest, nil))
	if resp, err = readResponse(conn, 15, 5*time.Second); err != nil {
		return fmt.Errorf("empty Request: %v", err)
	}
	if resp.Status == nil || resp.Status.Code == 0 {
		return fmt.Errorf("empty Request (no service, no method): answered OK")
	}
	if f, err = echoFrame(17, "last"); err != nil {
		return err
	}
	conn.Write(f)
	if err := expectEchoReply(conn, 17, "last"); err != nil {
		return fmt.Errorf("after an empty Request: %v", err)
	}
	return nil
}
