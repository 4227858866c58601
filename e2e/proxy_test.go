package e2e

// A TCP proxy between one replica and Redis, which the partition scenario
// cuts.

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// proxy forwards connections to upstream until it is cut. A cut is a
// blackhole, as a network partition looks to the client: connections stay
// open and accept what the client writes, but nothing reaches the server and
// nothing comes back, so the client only learns of it by timing out.
type proxy struct {
	ln       net.Listener
	upstream string

	mu    sync.Mutex
	cut   bool
	conns map[*pconn]struct{}
	wg    sync.WaitGroup
}

// pconn is one client connection and, unless it was accepted during a cut,
// its upstream connection.
type pconn struct {
	client, up net.Conn
}

// startProxy listens on a loopback port; it is closed when the test ends.
func startProxy(t *testing.T, upstream string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, upstream: upstream, conns: map[*pconn]struct{}{}}
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *proxy) url() string { return "redis://" + p.ln.Addr().String() + "/0" }

func (p *proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		c := &pconn{client: client}
		if !p.isCut() {
			if c.up, err = net.DialTimeout("tcp", p.upstream, time.Second); err != nil {
				client.Close()
				continue
			}
		}
		p.mu.Lock()
		if p.cut && c.up != nil { // cut while dialling
			c.up.Close()
			c.up = nil
		}
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		p.wg.Go(func() { p.serve(c) })
	}
}

// serve copies both ways until either side closes; once the connection is
// cut it swallows what the client sends until the client or Heal closes it.
func (p *proxy) serve(c *pconn) {
	defer func() {
		c.client.Close()
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}()
	if up := c.up; up != nil {
		done := make(chan struct{})
		go func() {
			defer close(done)
			io.Copy(c.client, up)
			if !p.isCut() {
				c.client.Close() // the server closed: so does the proxy
			}
		}()
		io.Copy(up, c.client)
		up.Close()
		<-done
		if !p.isCut() {
			return
		}
	}
	io.Copy(io.Discard, c.client)
}

func (p *proxy) isCut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut
}

// Cut partitions the client from the server: established connections and
// new ones alike go nowhere.
func (p *proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		if c.up != nil {
			c.up.Close()
		}
	}
}

// Heal ends the partition: the blackholed connections are closed (the
// client sees them fail and dials again) and new ones are forwarded.
func (p *proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
	for c := range p.conns {
		c.client.Close()
	}
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.client.Close()
		if c.up != nil {
			c.up.Close()
		}
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func TestProxy(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	p := startProxy(t, echo.Addr().String())
	// roundTrip reports whether a message sent through c comes back within 300ms.
	roundTrip := func(c net.Conn) bool {
		if _, err := c.Write([]byte("ping")); err != nil {
			return false
		}
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 4)
		_, err := io.ReadFull(c, buf)
		return err == nil && string(buf) == "ping"
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", p.ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	before := dial()
	if !roundTrip(before) {
		t.Fatal("no round trip through the proxy")
	}
	p.Cut()
	if roundTrip(before) {
		t.Error("an established connection still forwards after Cut")
	}
	if roundTrip(dial()) {
		t.Error("a new connection forwards during a cut")
	}
	p.Heal()
	if !roundTrip(dial()) {
		t.Error("no round trip after Heal")
	}
}
