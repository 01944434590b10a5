package daemon

import (
	"net"
	"os"
)

// sdNotify sends a state line to systemd (Type=notify) when it runs us;
// elsewhere it does nothing. The protocol is one datagram to
// $NOTIFY_SOCKET, so no library is needed for it.
func sdNotify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write([]byte(state))
	return err
}
