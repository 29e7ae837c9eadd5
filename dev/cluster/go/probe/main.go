// Command probe is what a test runs inside a pod to see the cluster as a workload does:
//
//	probe serve                 wait for SIGTERM (the pod's main process)
//	probe whoami [host[:port]]  ask the API server who the pod's projected ServiceAccount token is
//	                            (default: $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT), checking its
//	                            certificate against the mounted ca.crt
//	probe resolve NAME          look NAME up the way a program would (/etc/resolv.conf, search list)
//	probe query SERVER NAME     one DNS A query to SERVER:53; prints the response code and the answers
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: probe serve|whoami|resolve|query ..."))
	}
	var err error
	switch args := os.Args[2:]; os.Args[1] {
	case "serve":
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
		<-stop
	case "whoami":
		host := net.JoinHostPort(os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"))
		if len(args) > 0 {
			host = args[0]
		}
		err = whoami(host)
	case "resolve":
		var addrs []string
		if addrs, err = net.LookupHost(arg(args, 0)); err == nil {
			fmt.Println(strings.Join(addrs, " "))
		}
	case "query":
		err = query(arg(args, 0), arg(args, 1))
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func arg(args []string, i int) string {
	if i >= len(args) {
		fail(errors.New("missing argument"))
	}
	return args[i]
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "probe:", err)
	os.Exit(1)
}

func whoami(host string) error {
	token, err := os.ReadFile(saDir + "/token")
	if err != nil {
		return err
	}
	caPem, err := os.ReadFile(saDir + "/ca.crt")
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPem) {
		return errors.New("no certificate in ca.crt")
	}
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	body := `{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`
	req, err := http.NewRequest("POST", "https://"+host+"/apis/authentication.k8s.io/v1/selfsubjectreviews",
		strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusCreated {
		return fmt.Errorf("%s: %s", res.Status, out)
	}
	var review struct {
		Status struct {
			UserInfo struct {
				Username string `json:"username"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	if err := json.Unmarshal(out, &review); err != nil {
		return err
	}
	fmt.Println(review.Status.UserInfo.Username)
	return nil
}

var rcodes = map[int]string{0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}

// query sends one recursive A query over UDP and prints "rcode=<name> answers=<a,b>".
func query(server, name string) error {
	var msg bytes.Buffer
	binary.Write(&msg, binary.BigEndian, [6]uint16{0x5ca1, 0x0100, 1, 0, 0, 0})
	for _, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		msg.WriteByte(byte(len(label)))
		msg.WriteString(label)
	}
	msg.Write([]byte{0, 0, 1, 0, 1}) // root, type A, class IN
	conn, err := net.DialTimeout("udp", net.JoinHostPort(server, "53"), 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(msg.Bytes()); err != nil {
		return err
	}
	buf := make([]byte, 1500)
	n, err := conn.Read(buf)
	if err != nil {
		return err
	}
	res := buf[:n]
	if n < 12 || binary.BigEndian.Uint16(res) != 0x5ca1 {
		return errors.New("not a response to this query")
	}
	rcode := int(res[3] & 0xf)
	answers := []string{}
	off := skipName(res, 12) + 4
	for i := 0; i < int(binary.BigEndian.Uint16(res[6:])) && off > 0; i++ {
		off = skipName(res, off)
		if off < 0 || off+10 > n {
			break
		}
		typ, length := binary.BigEndian.Uint16(res[off:]), int(binary.BigEndian.Uint16(res[off+8:]))
		off += 10
		if typ == 1 && length == 4 && off+4 <= n {
			answers = append(answers, net.IP(res[off:off+4]).String())
		}
		off += length
	}
	name, ok := rcodes[rcode]
	if !ok {
		name = fmt.Sprint(rcode)
	}
	fmt.Printf("rcode=%s answers=%s\n", name, strings.Join(answers, ","))
	return nil
}

// skipName returns the offset just past the (possibly compressed) name at off, or -1.
func skipName(msg []byte, off int) int {
	for off >= 0 && off < len(msg) {
		switch l := int(msg[off]); {
		case l == 0:
			return off + 1
		case l&0xc0 == 0xc0:
			return off + 2
		default:
			off += l + 1
		}
	}
	return -1
}
