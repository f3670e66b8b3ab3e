// Package verify checks that a webhook delivery came from keyplane: its
// signature, per the Standard Webhooks specification, and its age. It
// imports only the standard library, so a receiver can use it without the
// rest of keyplane.
//
//	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
//	if err := verify.Request("whsec_…", r.Header, body, time.Now()); err != nil {
//		http.Error(w, "bad signature", http.StatusBadRequest)
//		return
//	}
//	// deduplicate on r.Header.Get("webhook-id"), then handle the event
package verify
