package engine

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestApproversJSON(t *testing.T) {
	carol, dave, mallory := Actor{ID: "carol"}, Actor{ID: "dave", Groups: []string{"sre"}}, Actor{ID: "mallory"}
	tests := []struct {
		in     string
		want   Approvers
		allows []Actor
		denies []Actor
	}{
		{`null`, nil, []Actor{carol, mallory}, nil},
		{`{"eu":["carol","sre"],"us":["sre"]}`, Approvers{"eu": {"carol", "sre"}, "us": {"sre"}}, []Actor{dave}, []Actor{carol, mallory}},
		// The first schema's single list, in approvals and their events.
		{`["carol","sre"]`, Approvers{"": {"carol", "sre"}}, []Actor{carol, dave}, []Actor{mallory}},
		// Written only when several environments had no approver in
		// common: no one may approve.
		{`[]`, Approvers{"": {}}, nil, []Actor{carol, dave, mallory}},
	}
	for _, tt := range tests {
		var got Approvers
		if err := json.Unmarshal([]byte(tt.in), &got); err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.in, diff)
		}
		for _, a := range tt.allows {
			if !a.mayApprove(got) {
				t.Errorf("%s: %s may not approve", tt.in, a.ID)
			}
		}
		for _, a := range tt.denies {
			if a.mayApprove(got) {
				t.Errorf("%s: %s may approve", tt.in, a.ID)
			}
		}
	}
	var ev EventData
	if err := json.Unmarshal([]byte(`{"approvers":["carol"],"job":"hold"}`), &ev); err != nil || ev.Job != "hold" {
		t.Errorf("an event of the first schema: %+v, %v", ev, err)
	}
	var bad Approvers
	if err := json.Unmarshal([]byte(`"carol"`), &bad); err == nil {
		t.Error("a string was read as approvers")
	}
}
