package service_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// endpointRequests returns, per micro instance, the requests its msg-get
// endpoint counted and the shed requests in its endpoints' data.
func endpointRequests(t *testing.T, e *apiEnv) (gets map[string]int, shed int64) {
	t.Helper()
	sub := srvRequest(t, e, "$SRV.STATS.nts")
	defer sub.Unsubscribe()
	gets = map[string]int{}
	for len(gets) < 2 {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("stats replies from %d replicas: %v", len(gets), err)
		}
		var st micro.Stats
		if err := json.Unmarshal(m.Data, &st); err != nil {
			t.Fatal(err)
		}
		for _, ep := range st.Endpoints {
			if ep.Name == "msg-get" {
				gets[st.ID] = ep.NumRequests
			}
			var d struct {
				Shed int64 `json:"shed"`
			}
			if len(ep.Data) > 0 {
				if err := json.Unmarshal(ep.Data, &d); err != nil {
					t.Fatal(err)
				}
			}
			shed += d.Shed
		}
	}
	return gets, shed
}

// srvRequest sends a micro discovery request to subject and returns the
// subscription every instance's reply comes to; the caller unsubscribes.
func srvRequest(t *testing.T, e *apiEnv, subject string) *nats.Subscription {
	t.Helper()
	inbox := nats.NewInbox()
	sub, err := e.nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.nc.PublishRequest(subject, inbox, nil); err != nil {
		sub.Unsubscribe()
		t.Fatal(err)
	}
	return sub
}

// pingReplies returns how many micro instances answer $SRV.PING.nts
// within 200ms.
func pingReplies(t *testing.T, e *apiEnv) int {
	t.Helper()
	sub := srvRequest(t, e, "$SRV.PING.nts")
	defer sub.Unsubscribe()
	n := 0
	for {
		if _, err := sub.NextMsg(200 * time.Millisecond); err != nil {
			return n
		}
		n++
	}
}

func TestReplicasShareAndShed(t *testing.T) {
	e := newAPIEnv(t)
	shared := "dir://" + filepath.ToSlash(t.TempDir()) // the blob tier all replicas share
	for range 2 {
		cfg := e.config(t)
		cfg.Tiers.Blob.URL = shared
		cfg.Service.MaxConcurrent = 1
		e.run(t, cfg)
	}
	// e.run returns once some replica answers for ORDERS, which the first
	// one does while the second may still be starting.
	checkFor(t, 10*time.Second, func() error {
		if n := pingReplies(t, e); n != 2 {
			return fmt.Errorf("%d replicas answer $SRV.PING", n)
		}
		return nil
	})

	t.Run("queue group", func(t *testing.T) {
		// With one worker, a client's next request may come before the
		// worker that answered the last one has returned its slot: that
		// request is shed, and retried.
		retries := 0
		for i := 0; i < 40; i++ {
			m, err := e.request(fmt.Sprintf("nts.get.ORDERS.%d", 11+i), nil)
			if err != nil {
				t.Fatal(err)
			}
			if m.Header.Get(micro.ErrorCodeHeader) == "503" {
				retries++
				i--
				continue
			}
			e.checkMsg(t, m, uint64(11+i))
		}
		gets, _ := endpointRequests(t, e)
		total := 0
		for id, n := range gets {
			if n == 0 {
				t.Errorf("replica %s served no msg.get", id)
			}
			total += n
		}
		if total != 40+retries {
			t.Fatalf("replicas counted %v msg.get requests, want %d in all", gets, 40+retries)
		}
	})

	t.Run("load shedding", func(t *testing.T) {
		// One worker per replica and a burst of whole-archive ranges: the
		// handlers answer what finds no free worker at once with 503.
		inbox := nats.NewInbox()
		sub, err := e.nc.SubscribeSync(inbox)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		_, before := endpointRequests(t, e)
		const n = 40
		for range n {
			if err := e.nc.PublishRequest("nts.range.ORDERS", inbox, []byte(`{"start_seq": 4}`)); err != nil {
				t.Fatal(err)
			}
		}
		var ended, shed int
		for ended+shed < n {
			m, err := sub.NextMsg(20 * time.Second)
			if err != nil {
				t.Fatalf("%d batches ended, %d shed: %v", ended, shed, err)
			}
			switch {
			case m.Header.Get(micro.ErrorCodeHeader) == "503":
				if !strings.Contains(m.Header.Get(micro.ErrorHeader), "limit") {
					t.Fatalf("503: %s", m.Header.Get(micro.ErrorHeader))
				}
				shed++
			case m.Header.Get(micro.ErrorCodeHeader) != "":
				t.Fatalf("error %s %s", m.Header.Get(micro.ErrorCodeHeader), m.Header.Get(micro.ErrorHeader))
			case m.Header.Get("Status") == "204":
				ended++
			}
		}
		if ended == 0 || shed == 0 {
			t.Fatalf("%d batches served, %d shed", ended, shed)
		}
		if _, counted := endpointRequests(t, e); counted-before != int64(shed) {
			t.Fatalf("replicas counted %d shed requests, clients got %d", counted, shed)
		}
	})
}
