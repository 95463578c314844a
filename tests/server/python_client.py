"""Drives moe_server through Python stubs generated from proto/ (see python_client_test.sh).

Checks: health reaches SERVING; a text generation streams chunk by chunk and ends with
FINISH_REASON_LENGTH; its text equals Detokenize of its ids; greedy is repeatable;
invalid input is INVALID_ARGUMENT; after SIGTERM an in-flight stream still completes and
new requests are refused.
"""
import argparse
import os
import signal
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--stubs", required=True)
    ap.add_argument("--server-pid", type=int, required=True)
    args = ap.parse_args()
    sys.path.insert(0, args.stubs)

    import grpc
    from health import health_pb2, health_pb2_grpc
    from moe.v1 import inference_pb2 as pb, inference_pb2_grpc as pb_grpc

    channel = grpc.insecure_channel(args.endpoint)
    health = health_pb2_grpc.HealthStub(channel)
    stub = pb_grpc.InferenceStub(channel)

    deadline = time.time() + 60
    status = None
    while time.time() < deadline:
        try:
            status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
        except grpc.RpcError as e:
            status = e.code()
        if status == health_pb2.HealthCheckResponse.SERVING:
            break
        time.sleep(0.1)
    assert status == health_pb2.HealthCheckResponse.SERVING, f"health: {status}"

    info = stub.ModelInfo(pb.ModelInfoRequest(), timeout=10)
    assert info.architecture == "OlmoeForCausalLM", info

    def generate(max_tokens, text="The quick brown fox"):
        req = pb.GenerateRequest(
            text=text,
            sampling=pb.SamplingParams(max_tokens=max_tokens, temperature=0.0,
                                       ignore_eos=True))
        return stub.Generate(req, timeout=60)

    ids, text, chunks, complete = [], "", 0, None
    for resp in generate(24):
        if resp.HasField("chunk"):
            chunks += 1
            ids.extend(resp.chunk.token_ids)
            text += resp.chunk.text
        elif resp.HasField("complete"):
            complete = resp.complete
    assert complete is not None, "no Complete message"
    assert complete.finish_reason == pb.FINISH_REASON_LENGTH, complete
    assert complete.completion_tokens == 24 and len(ids) == 24, (complete, ids)
    # Chunks hold one token each unless this client reads slower than the server
    # generates (the server then merges pending tokens), so only >= 1 is certain.
    assert chunks >= 1, "no chunks"
    detok = stub.Detokenize(pb.DetokenizeRequest(token_ids=ids, skip_special_tokens=True),
                            timeout=10)
    assert detok.text == text, (detok.text, text)
    again = [t for r in generate(24) if r.HasField("chunk") for t in r.chunk.token_ids]
    assert again == ids, "greedy generation is not repeatable"
    print(f"streamed {len(ids)} tokens in {chunks} chunks: {text!r}")

    try:
        list(stub.Generate(pb.GenerateRequest(
            text="x", sampling=pb.SamplingParams(max_tokens=4, top_p=2.0)), timeout=10))
        raise AssertionError("top_p=2 was accepted")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
        assert e.details().startswith("sampling.top_p"), e.details()

    # Graceful drain: SIGTERM after the first chunk; the stream must still finish.
    stream = generate(300)
    got, final = 0, None
    for resp in stream:
        if resp.HasField("chunk"):
            got += len(resp.chunk.token_ids)
            if got and final is None and got == len(resp.chunk.token_ids):
                os.kill(args.server_pid, signal.SIGTERM)
        elif resp.HasField("complete"):
            final = resp.complete
    assert final is not None and final.finish_reason == pb.FINISH_REASON_LENGTH, final
    assert got == 300, got
    try:
        list(generate(4))
        raise AssertionError("a request after SIGTERM was accepted")
    except grpc.RpcError as e:
        # UNAVAILABLE while draining; CANCELLED once gRPC itself is shutting down.
        assert e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED), e
    print("python client: all checks passed")


if __name__ == "__main__":
    main()
