package tcpproxy

import (
	"bufio"
	"net"
	"testing"
	"time"
)

func TestProxyForwardsCutsAndRestores(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				s := bufio.NewScanner(c)
				for s.Scan() {
					c.Write([]byte("echo " + s.Text() + "\n"))
				}
			}()
		}
	}()
	p, err := Start(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	roundTrip := func() (string, error) {
		c, err := net.DialTimeout("tcp", p.Addr(), time.Second)
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte("hi\n")); err != nil {
			return "", err
		}
		return bufio.NewReader(c).ReadString('\n')
	}
	if got, err := roundTrip(); err != nil || got != "echo hi\n" {
		t.Fatalf("forward: %q %v", got, err)
	}
	p.Cut()
	if got, err := roundTrip(); err == nil {
		t.Fatalf("cut proxy still answers %q", got)
	}
	p.Restore()
	if got, err := roundTrip(); err != nil || got != "echo hi\n" {
		t.Fatalf("after restore: %q %v", got, err)
	}
	p.SetLatency(50 * time.Millisecond)
	start := time.Now()
	if _, err := roundTrip(); err != nil || time.Since(start) < 100*time.Millisecond {
		t.Fatalf("latency not applied: %v after %v", err, time.Since(start))
	}
}
