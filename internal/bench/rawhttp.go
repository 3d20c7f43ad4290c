package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// rawConn is a keep-alive HTTP/1.1 connection for publishing: it writes a
// request made of ready bytes and parses just enough of the answer. It
// costs the tool a fraction of net/http's client, which matters when the
// tool shares the machine with the hub it measures.
type rawConn struct {
	t    *target
	head []byte // the request's headers after the request line, up to the Content-Length value
	conn net.Conn
	br   *bufio.Reader
	req  []byte
}

func newRawConn(t *target, contentType, token string) *rawConn {
	var h bytes.Buffer
	fmt.Fprintf(&h, " HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\n", t.u.Host, contentType)
	if token != "" {
		fmt.Fprintf(&h, "Authorization: Bearer %s\r\n", token)
	}
	h.WriteString("Content-Length: ")
	return &rawConn{t: t, head: h.Bytes()}
}

// post sends body to path and returns the status and the body of the
// answer. It reconnects once when the connection has gone.
func (c *rawConn) post(ctx context.Context, path string, body []byte) (int, []byte, error) {
	for attempt := 0; ; attempt++ {
		status, resp, err := c.try(ctx, path, body)
		if err == nil || attempt == 1 || ctx.Err() != nil {
			return status, resp, err
		}
		c.close()
	}
}

func (c *rawConn) try(ctx context.Context, path string, body []byte) (int, []byte, error) {
	if c.conn == nil {
		conn, err := c.t.dial(ctx)
		if err != nil {
			return 0, nil, err
		}
		c.conn, c.br = conn, bufio.NewReaderSize(conn, 4096)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.conn.SetDeadline(dl)
	} else {
		_ = c.conn.SetDeadline(time.Now().Add(time.Minute))
	}
	c.req = append(append(append(c.req[:0], "POST "...), path...), c.head...)
	c.req = strconv.AppendInt(c.req, int64(len(body)), 10)
	c.req = append(append(c.req, "\r\n\r\n"...), body...)
	if _, err := c.conn.Write(c.req); err != nil {
		return 0, nil, err
	}
	return c.readResponse()
}

var errBadResponse = errors.New("malformed HTTP response")

// readResponse reads a status line, headers, and a body sized by
// Content-Length or chunked.
func (c *rawConn) readResponse() (int, []byte, error) {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return 0, nil, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, nil, errBadResponse
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, nil, errBadResponse
	}
	length, chunked, closing := -1, false, false
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return 0, nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, nil, errBadResponse
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return 0, nil, errBadResponse
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			closing = bytes.EqualFold(value, []byte("close"))
		}
	}
	var body []byte
	switch {
	case chunked:
		body, err = c.readChunked()
	case length >= 0:
		body = make([]byte, length)
		_, err = io.ReadFull(c.br, body)
	default:
		body, err = io.ReadAll(c.br)
		closing = true
	}
	if closing {
		c.close()
	}
	return status, body, err
}

func (c *rawConn) readChunked() ([]byte, error) {
	var body []byte
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return nil, err
		}
		size, err := strconv.ParseUint(string(bytes.TrimRight(line, "\r\n")), 16, 32)
		if err != nil {
			return nil, errBadResponse
		}
		if size == 0 {
			_, err := c.br.ReadSlice('\n') // the empty trailer
			return body, err
		}
		start := len(body)
		body = append(body, make([]byte, size+2)...)
		if _, err := io.ReadFull(c.br, body[start:]); err != nil {
			return nil, err
		}
		body = body[:len(body)-2]
	}
}

func (c *rawConn) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn, c.br = nil, nil
	}
}
