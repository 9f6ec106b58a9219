// SPDX-License-Identifier: Apache-2.0

// Package echo holds what the Go peers of the ttrpc interop tests share: the messages of
// test/interop/echo.proto written by hand (gogo/protobuf marshals them by reflection over
// the struct tags, the way containerd/ttrpc's own Request and Response are written), and a
// little raw framing for the peers that must send or expect broken frames, which the ttrpc
// package cannot produce.
package echo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/containerd/ttrpc"
	"github.com/gogo/protobuf/proto"
)

const (
	Service = "cloak.test.v1.Echo"
	Method  = "Echo"

	// MaxFrame is ttrpc's limit on a frame's data length (channel.go, messageLengthMax).
	MaxFrame    = 4 << 20
	HeaderLen   = 10
	TypeRequest = 0x1
	TypeReply   = 0x2
)

type EchoRequest struct {
	Payload     []byte `protobuf:"bytes,1,opt,name=payload,proto3"`
	SleepMs     uint32 `protobuf:"varint,2,opt,name=sleep_ms,json=sleepMs,proto3"`
	FailCode    int32  `protobuf:"varint,3,opt,name=fail_code,json=failCode,proto3"`
	FailMessage string `protobuf:"bytes,4,opt,name=fail_message,json=failMessage,proto3"`
	ReplySize   uint32 `protobuf:"varint,5,opt,name=reply_size,json=replySize,proto3"`
}

func (m *EchoRequest) Reset()      { *m = EchoRequest{} }
func (*EchoRequest) ProtoMessage() {}
func (m *EchoRequest) String() string {
	return fmt.Sprintf("EchoRequest{payload:%dB sleep_ms:%d fail_code:%d fail_message:%q reply_size:%d}",
		len(m.Payload), m.SleepMs, m.FailCode, m.FailMessage, m.ReplySize)
}

type EchoResponse struct {
	Payload []byte `protobuf:"bytes,1,opt,name=payload,proto3"`
}

func (m *EchoResponse) Reset()      { *m = EchoResponse{} }
func (*EchoResponse) ProtoMessage() {}
func (m *EchoResponse) String() string {
	return fmt.Sprintf("EchoResponse{payload:%dB}", len(m.Payload))
}

// Pattern returns the reply_size answer: n bytes where byte i = i % 251.
func Pattern(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i % 251)
	}
	return p
}

// Header is the 10-byte ttrpc frame header.
type Header struct {
	Length   uint32
	StreamID uint32
	Type     uint8
	Flags    uint8
}

func (h Header) Bytes() []byte {
	b := make([]byte, HeaderLen)
	binary.BigEndian.PutUint32(b[0:4], h.Length)
	binary.BigEndian.PutUint32(b[4:8], h.StreamID)
	b[8] = h.Type
	b[9] = h.Flags
	return b
}

// Frame returns header + data for one frame.
func Frame(streamID uint32, typ uint8, data []byte) []byte {
	h := Header{Length: uint32(len(data)), StreamID: streamID, Type: typ}
	return append(h.Bytes(), data...)
}

// RequestFrame marshals a ttrpc Request envelope around msg.
func RequestFrame(streamID uint32, service, method string, msg proto.Message) ([]byte, error) {
	payload, err := proto.Marshal(msg)
	if err != nil {
		return nil, err
	}
	env, err := proto.Marshal(&ttrpc.Request{Service: service, Method: method, Payload: payload})
	if err != nil {
		return nil, err
	}
	return Frame(streamID, TypeRequest, env), nil
}

// ResponseFrame marshals a successful ttrpc Response envelope around msg.
func ResponseFrame(streamID uint32, msg proto.Message) ([]byte, error) {
	payload, err := proto.Marshal(msg)
	if err != nil {
		return nil, err
	}
	env, err := proto.Marshal(&ttrpc.Response{Payload: payload})
	if err != nil {
		return nil, err
	}
	return Frame(streamID, TypeReply, env), nil
}

// ErrOversize is returned by ReadFrame for a header announcing more than max bytes; the
// header is returned too and the data is left unread.
var ErrOversize = errors.New("frame data length over the limit")

// ReadFrame reads one frame. A header longer than max is returned with ErrOversize.
func ReadFrame(c net.Conn, max uint32) (Header, []byte, error) {
	var hb [HeaderLen]byte
	if _, err := io.ReadFull(c, hb[:]); err != nil {
		return Header{}, nil, err
	}
	h := Header{
		Length:   binary.BigEndian.Uint32(hb[0:4]),
		StreamID: binary.BigEndian.Uint32(hb[4:8]),
		Type:     hb[8],
		Flags:    hb[9],
	}
	if h.Length > max {
		return h, nil, ErrOversize
	}
	data := make([]byte, h.Length)
	if _, err := io.ReadFull(c, data); err != nil {
		return h, nil, fmt.Errorf("reading %d data bytes: %w", h.Length, err)
	}
	return h, data, nil
}
