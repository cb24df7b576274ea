package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"sync"
	"time"
)

// Forward accepts TCP connections on listen (in the caller's namespace) and relays each
// to target, dialled from inside netns. It returns when ctx ends.
func Forward(ctx context.Context, listen string, netns NetNS, target string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", listen, err)
	}
	go func() {
		<-ctx.Done()
		_ = ln.Close() // unblocks Accept
	}()
	dial := netns.Dialer(5 * time.Second)
	log.Printf("forwarding %s -> %s in netns %s", listen, target, netns)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			log.Printf("accept: %v", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		go relay(ctx, c, dial, target)
	}
}

func relay(ctx context.Context, c net.Conn, dial func(context.Context, string, string) (net.Conn, error), target string) {
	defer c.Close()
	u, err := dial(ctx, "tcp", target)
	if err != nil {
		log.Printf("dial upstream: %v", err)
		return
	}
	defer u.Close()
	var wg sync.WaitGroup
	wg.Add(2)
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src) // ends at EOF or error; both are the end of the relay
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite() // best effort half-close
		}
	}
	go pipe(u, c)
	go pipe(c, u)
	wg.Wait()
}
