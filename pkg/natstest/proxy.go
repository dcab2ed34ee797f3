package natstest

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy is a TCP proxy between NATS clients and a server that injects network faults: it delays
// what it forwards, drops it, or cuts every connection. Connect clients to URL.
type Proxy struct {
	ln     net.Listener
	target string
	delay  atomic.Int64 // nanoseconds added before each chunk is forwarded
	drop   atomic.Bool  // chunks are read and thrown away

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// StartProxy starts a proxy to target (host:port) on a free loopback port, until the test ends.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.Cut()
	})
	return p
}

// URL is the address clients connect to.
func (p *Proxy) URL() string { return "nats://" + p.ln.Addr().String() }

// SetDelay delays every chunk forwarded from now on by d (0: none).
func (p *Proxy) SetDelay(d time.Duration) { p.delay.Store(int64(d)) }

// SetDrop makes the proxy throw away what it reads, in both directions, until SetDrop(false):
// bytes lost mid-stream, which the NATS protocol on either side notices sooner or later.
func (p *Proxy) SetDrop(drop bool) { p.drop.Store(drop) }

// Cut closes every connection through the proxy; clients reconnect through it.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		p.mu.Lock()
		p.conns[client], p.conns[server] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go p.pipe(client, server)
		go p.pipe(server, client)
	}
}

// pipe forwards from src to dst until either fails, then closes both.
func (p *Proxy) pipe(src, dst net.Conn) {
	defer func() {
		_ = src.Close()
		_ = dst.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.drop.Load() {
			if d := time.Duration(p.delay.Load()); d > 0 {
				time.Sleep(d)
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // closed by Cut, or by either side
		}
	}
}
