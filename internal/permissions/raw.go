package permissions

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"
)

// rawConnect opens a plain TCP connection to the server at serverURL, checks that its INFO
// requires TLS, writes send without TLS and passes what the server sends back until it closes the
// connection (or a few seconds pass) to check.
func rawConnect(ctx context.Context, serverURL, send string, check func(reply string) error) error {
	u, err := url.Parse(serverURL)
	if err != nil {
		return err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	rd := bufio.NewReader(conn)
	info, err := rd.ReadString('\n')
	if err != nil {
		return fmt.Errorf("reading INFO: %w", err)
	}
	if !strings.Contains(info, `"tls_required":true`) {
		return fmt.Errorf("the server does not require TLS: %s", strings.TrimSpace(info))
	}
	if _, err := io.WriteString(conn, send); err != nil {
		return nil // closed already: refused
	}
	reply, _ := io.ReadAll(rd) // until the server closes the connection, resets it or the deadline
	return check(string(reply))
}
