"""Token attribution (backend/gradients.py) on the demo checkpoint: gradients against finite differences, Integrated
Gradients' completeness, gradient x input against an independent computation, planted tokens found, cancellation."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from transformers.models.llama.modeling_llama import LlamaRMSNorm

from armorm_ui.backend import gradients, native
from armorm_ui.backend.base import Request, TokenTarget
from armorm_ui.chat import ChatEncoder
from armorm_ui.errors import InputError, ScoringError
from armorm_ui.objectives import VERBOSITY_INDEX

from .conftest import CARD_PROMPT, CARD_RESPONSES

TARGETS = [TokenTarget("score"), TokenTarget("reward", 3), TokenTarget("coefficient", VERBOSITY_INDEX)]
"""Verbosity's is the coefficient where gating @ Tᵀ differs from the gating (T's other rows are the identity's)."""
K, J = 4, 7
"""The planted test's objectives: K's reward and J's coefficient."""
PROMPT_START = 5
"""<|begin_of_text|><|start_header_id|>user<|end_header_id|> then '\\n\\n': the user's text starts at 5."""


def load(demo_dir) -> native.NativeBackend:
    backend, _ = native.load(str(demo_dir), device="cpu", dtype="float32")
    return backend


def encode(tokenizer, prompt: str = CARD_PROMPT, response: str = CARD_RESPONSES[0]):
    enc = ChatEncoder(tokenizer).encode([{"role": "user", "content": prompt}], [response])
    assert enc.prefix_ids[PROMPT_START - 1] == 271  # '\n\n' before the user's text
    return enc


def prompt_positions(enc) -> list[int]:
    return list(range(PROMPT_START, enc.gate_position))


def response_positions(enc) -> list[int]:
    """The response's own tokens: after the leading '\\n\\n', before the final <|eot_id|>."""
    p = len(enc.prefix_ids)
    return list(range(p + 1, p + len(enc.candidate_ids[0]) - 1))


def positions_for(target: TokenTarget, enc) -> list[int]:
    """The coefficient depends on the conversation only; the score and rewards are attributed to the response."""
    return prompt_positions(enc) if target.kind == "coefficient" else response_positions(enc)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """The models here are tiny: one thread is fastest, and several thrash on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def backend(demo_dir):
    return load(demo_dir)


def rms_norm_float64(norm: LlamaRMSNorm, h: torch.Tensor) -> torch.Tensor:
    return norm.weight * h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)


@pytest.fixture(scope="module")
def backend64(demo_dir):
    """The demo model in float64 throughout. transformers' LlamaRMSNorm computes in float32 whatever its input (for
    bf16 models), a rounding far above the finite differences' steps: this model's norms use the same formula in
    float64 instead."""
    b = load(demo_dir)
    b.model.double()
    for module in b.model.modules():
        if isinstance(module, LlamaRMSNorm):
            module.forward = functools.partial(rms_norm_float64, module)
    return b


@pytest.fixture(scope="module")
def enc(tokenizer):
    return encode(tokenizer)


# ------------------------------------------------------------------------------------------------ exact gradients


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.kind)
def test_gradient_equals_finite_differences(backend64, enc, target):
    if target.kind == "score":  # prompt tokens move both the gate and the reward; response tokens the reward only
        positions = prompt_positions(enc)[-1:] + response_positions(enc)[:1]
    else:
        positions = positions_for(target, enc)[1:3]
    f, x = gradients.target_function(backend64.model, enc, target, positions)
    assert x.dtype == torch.float64 and x.shape == (len(positions), 64)
    with torch.enable_grad():
        assert torch.autograd.gradcheck(f, (x.clone().requires_grad_(),), eps=1e-6, atol=1e-8, rtol=1e-5)


def target_of(model, enc, target: TokenTarget, emb: torch.Tensor) -> torch.Tensor:
    """The target for the embeddings of the whole conversation (1, L, d), through model.head: for the checks below,
    without gradients.target_function."""
    h = model.model(inputs_embeds=emb, use_cache=False).last_hidden_state[0]  # (L, d)
    rewards, gating, scores = model.head(h[enc.gate_position], h[-1:])
    T = model.reward_transform_matrix
    k = target.objective
    return {"score": lambda: scores[0], "reward": lambda: rewards[0, k], "coefficient": lambda: (gating @ T.T)[k]}[
        target.kind
    ]()


def test_values_are_the_models_outputs(backend, enc):
    """The target at the input is what scoring gives, and the baseline is the target with zeros put in."""
    out = backend.score([enc], Request())[0]
    T = backend.reward_transform_matrix
    expected = {"score": ((out.rewards @ T) @ out.gating_output)[0], "reward": out.rewards[0, 3],
                "coefficient": (out.gating_output @ T.T)[VERBOSITY_INDEX]}  # fmt: skip
    emb = backend.model.model.embed_tokens(torch.tensor([enc.full_ids(0)])).detach()  # (1, L, d)
    for target in TARGETS:
        positions = positions_for(target, enc)
        found = backend.attribute_tokens(enc, target, positions, "gradient_x_input", 1, Request())
        assert found.value == pytest.approx(expected[target.kind], abs=1e-5)
        zeroed = emb.clone()
        zeroed[0, positions] = 0.0
        with torch.no_grad():
            assert found.baseline_value == pytest.approx(float(target_of(backend.model, enc, target, zeroed)), abs=1e-6)
        assert abs(found.baseline_value - found.value) > 1e-5
        np.testing.assert_array_equal(found.positions, positions)
        np.testing.assert_array_equal(found.token_ids, [enc.full_ids(0)[p] for p in positions])


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.kind)
def test_gradient_x_input_is_grad_dot_embedding(backend, enc, target):
    """Computed here without gradients.target_function: the gradient for the whole conversation's embeddings."""
    model, ids = backend.model, enc.full_ids(0)
    positions = positions_for(target, enc)
    emb = model.model.embed_tokens(torch.tensor([ids])).detach().requires_grad_()  # (1, L, d)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(target_of(model, enc, target, emb), emb)  # (1, L, d)
    expected = (grad[0, positions] * emb[0, positions]).sum(-1).double().detach().numpy()  # (T,)
    found = backend.attribute_tokens(enc, target, positions, "gradient_x_input", 1, Request())
    assert found.method == "gradient_x_input" and found.steps == 1
    scale = np.abs(expected).max()
    assert scale > 1e-5  # something to compare
    np.testing.assert_allclose(found.attributions, expected, rtol=1e-4, atol=1e-4 * scale)


def test_parameters_untouched_and_grad_mode_free(backend, enc):
    """No .grad accumulates, requires_grad is as it was, and it runs inside torch.no_grad()."""
    params = list(backend.model.parameters())
    before = [p.requires_grad for p in params]
    with torch.no_grad():
        for method in ("gradient_x_input", "integrated_gradients"):
            backend.attribute_tokens(enc, TokenTarget("score"), response_positions(enc), method, 4, Request())
    assert [p.requires_grad for p in params] == before and any(before)
    assert all(p.grad is None for p in params)


# ---------------------------------------------------------------------------------------- Integrated Gradients


def linear_gate(model) -> None:
    """Make every ReLU of the gating MLP provably on along any path, so that the gate is softmax(affine(h) / T).
    Layer 0's bias exceeds |W0 h| for any h the final RMSNorm can output (||h|| <= sqrt(d) max|norm weight|), the
    next hidden layers pass their input through (identity), and the last layer's bias takes the offset back."""
    layers, d = model.gating.layers, model.config.hidden_size
    with torch.no_grad():
        bound = layers[0].weight.norm(dim=1) * model.model.norm.weight.abs().max() * d**0.5 + 1.0  # (gh,)
        layers[0].bias.copy_(bound)
        for layer in layers[1:-1]:
            layer.weight.copy_(torch.eye(layer.weight.shape[0]))
            layer.bias.zero_()
        layers[-1].bias.copy_(-layers[-1].weight @ bound)


@pytest.fixture(scope="module")
def smooth_backend(demo_dir):
    """The demo checkpoint with the gating MLP's ReLUs held on (linear_gate): their kinks make a coefficient's
    integrand piecewise smooth only, and Gauss-Legendre then converges like 1/steps (measured on the demo: 3-13% at
    64 steps, falling as the steps grow); the score and rewards need no edit (test below). The demo's embeddings
    are at Llama's initializer_range (0.02): at 1, the first RMSNorm switches on in a near-step just above zero
    that no 64-node rule resolves (measured: a 30% gap for the score at 64 steps)."""
    b = load(demo_dir)
    linear_gate(b.model)
    return b


def check_completeness(backend, enc, target) -> None:
    found = backend.attribute_tokens(enc, target, positions_for(target, enc), "integrated_gradients", 64, Request())
    assert found.method == "integrated_gradients" and found.steps == 64
    assert abs(found.value - found.baseline_value) > 1e-4  # a gap relative to something that moved
    assert found.completeness_gap < 0.01, found
    few = backend.attribute_tokens(enc, target, positions_for(target, enc), "integrated_gradients", 2, Request())
    assert few.completeness_gap > found.completeness_gap  # the steps matter: the test can see a coarse integral


@pytest.mark.parametrize("target", [t for t in TARGETS if t.kind != "coefficient"], ids=lambda t: t.kind)
def test_integrated_gradients_completeness_on_the_demo(backend, enc, target):
    check_completeness(backend, enc, target)


@pytest.mark.parametrize("target", [t for t in TARGETS if t.kind == "coefficient"], ids=lambda t: t.kind)
def test_integrated_gradients_completeness_of_a_smooth_gate(smooth_backend, enc, target):
    check_completeness(smooth_backend, enc, target)


def test_integrated_gradients_batches_do_not_change_the_result(backend, enc):
    """Rows of 5 path points (the last batch short) give what one batch of all 16 gives."""
    target, positions = TokenTarget("score"), prompt_positions(enc) + response_positions(enc)
    n = len(enc.full_ids(0))
    one = gradients.attribute_tokens(
        backend.model, enc, target, positions, "integrated_gradients", 16, Request(), 10**6
    )
    calls = []
    request = Request(should_stop=lambda: calls.append(1) and False)
    split = gradients.attribute_tokens(backend.model, enc, target, positions, "integrated_gradients", 16, request,
                                       5 * n)  # fmt: skip
    np.testing.assert_allclose(split.attributions, one.attributions, rtol=1e-4, atol=1e-7)
    assert split.value == pytest.approx(one.value) and split.baseline_value == pytest.approx(one.baseline_value)
    assert len(calls) >= 4  # checked before each of the 4 batches


# ------------------------------------------------------------------------------------------------ planted tokens


def unique_token(enc, positions: list[int]) -> int:
    """The middle one of the positions whose token occurs only once in the whole conversation."""
    ids = enc.full_ids(0)
    alone = [p for p in positions if ids.count(ids[p]) == 1]
    return alone[len(alone) // 2]


@pytest.fixture(scope="module")
def planted(demo_dir, tokenizer):
    """The demo model rewired so that objective K's reward reads direction u of one response token, and objective
    J's gating logit direction v of one prompt token; every other token's embedding is orthogonal to u and v.

    q_proj = k_proj = 0 gives uniform causal attention; v_proj/o_proj copy the u and v coordinates of each token
    (after the layer's RMSNorm) into the residual stream; the MLPs add nothing (down_proj = 0). Then the last
    position holds u only from the planted response token, and the gate position v only from the planted prompt
    token; regression row K reads u (the other rows are orthogonal to it), the gate's logit J reads v.
    Scales: the embeddings are scaled to rms 1e-4 and the copies weighted 0.01, so that every RMSNorm sees inputs
    under its sqrt(eps) = 0.003, where it is nearly linear. At the demo's rms 1, RMSNorm(a x) = x / rms(x) for all
    a > 0.01: the copied coordinate would not depend on the planted embedding's scale, which is the direction
    gradient x input differentiates along, and it would jump at a < 0.01, between Integrated Gradients' nodes (both
    methods missed the planted gate token there)."""
    enc = encode(tokenizer, "Name three animals with stripes, please.", "Zebras, tigers and some snakes have stripes.")
    backend = load(demo_dir)
    model = backend.model
    u, v = 0, 1  # coordinates of the residual stream
    ids = enc.full_ids(0)
    reward_pos, gate_pos = unique_token(enc, response_positions(enc)), unique_token(enc, prompt_positions(enc))
    with torch.no_grad():
        emb = model.model.embed_tokens.weight  # (V, d)
        emb.mul_(1e-4)
        emb[:, [u, v]] = 0.0
        emb[ids[reward_pos], u] = 1e-3
        emb[ids[gate_pos], v] = 1e-3
        for layer in model.model.layers:
            attn = layer.self_attn
            for w in (attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight, attn.o_proj.weight,
                      layer.mlp.down_proj.weight):  # fmt: skip
                w.zero_()
            attn.v_proj.weight[u, u] = attn.v_proj.weight[v, v] = 1.0  # key/value head 0, dims 0 and 1
            attn.o_proj.weight[u, u] = attn.o_proj.weight[v, v] = 0.01  # attention head 0 (reads value head 0)
        model.regression_layer.weight[:, u] = 0.0
        model.regression_layer.weight[K, u] = 10.0
        for layer in model.gating.layers:
            layer.weight.zero_()
            layer.bias.zero_()
        model.gating.layers[0].weight[0, v] = 1.0  # hidden unit 0 = relu(h_v), carried through to logit J
        for layer in model.gating.layers[1:-1]:
            layer.weight[0, 0] = 1.0
        model.gating.layers[-1].weight[J, 0] = 100.0
    return backend, enc, reward_pos, gate_pos


@pytest.mark.parametrize("method", ["gradient_x_input", "integrated_gradients"])
def test_planted_tokens_get_the_largest_attributions(planted, method):
    backend, enc, reward_pos, gate_pos = planted
    for target, positions, where in [(TokenTarget("reward", K), response_positions(enc), reward_pos),
                                     (TokenTarget("coefficient", J), prompt_positions(enc), gate_pos)]:  # fmt: skip
        found = backend.attribute_tokens(enc, target, positions, method, 32, Request())
        top = positions[int(np.argmax(np.abs(found.attributions)))]
        assert top == where, (target, found.attributions)
        assert found.attributions[positions.index(where)] > 0  # the planted direction raises the target
        assert found.value > found.baseline_value
    other = backend.attribute_tokens(enc, TokenTarget("coefficient", J), response_positions(enc), method, 8, Request())
    assert np.abs(other.attributions).max() < 1e-6  # the gate does not see the response (causal attention)


# --------------------------------------------------------------------------------------- validation, cancellation


@pytest.mark.parametrize(
    "positions, message",
    [([], "at least one position"), ([10**6], "outside"), ([-1], "outside"), ([6, 7, 6], "more than once"),
     ([1.5], "whole numbers")],
)  # fmt: skip
def test_bad_positions_are_refused(backend, enc, positions, message):
    with pytest.raises(InputError, match=message):
        backend.attribute_tokens(enc, TokenTarget("score"), positions, "gradient_x_input", 1, Request())


def test_bad_method_and_steps_are_refused(backend, enc):
    with pytest.raises(InputError, match="not one of"):
        backend.attribute_tokens(enc, TokenTarget("score"), [6], "saliency", 1, Request())
    with pytest.raises(InputError, match="steps"):
        backend.attribute_tokens(enc, TokenTarget("score"), [6], "integrated_gradients", 0, Request())


def test_a_cancelled_request_stops(backend, enc):
    positions = response_positions(enc)
    for method in ("gradient_x_input", "integrated_gradients"):
        with pytest.raises(ScoringError, match="cancelled"):
            backend.attribute_tokens(enc, TokenTarget("score"), positions, method, 8, Request(should_stop=lambda: True))
    calls, forwards = [], []  # batches of one path point each; stopped at the third check: two batches ran
    request = Request(should_stop=lambda: len(calls) >= 2 or calls.append(1))
    hook = backend.model.model.register_forward_hook(lambda *_: forwards.append(1))
    try:
        with pytest.raises(ScoringError, match="cancelled"):
            gradients.attribute_tokens(backend.model, enc, TokenTarget("score"), positions, "integrated_gradients", 8,
                                       request, len(enc.full_ids(0)))  # fmt: skip
    finally:
        hook.remove()
    assert len(calls) == 2 and len(forwards) == 2


def test_out_of_memory_halves_the_path_batches(demo_dir, enc):
    """On CUDA out-of-memory the path points go in smaller batches, with the same result; one point that does not fit
    is a clear refusal."""
    b = load(demo_dir)
    target, positions = TokenTarget("score"), response_positions(enc)
    whole = b.attribute_tokens(enc, target, positions, "integrated_gradients", 8, Request())
    real, sizes = b.model.model.forward, []

    def tight(*args, inputs_embeds=None, **kwargs):  # pretend at most 2 path points fit at once
        if torch.is_grad_enabled():
            if inputs_embeds.shape[0] > 2:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory")
            sizes.append(inputs_embeds.shape[0])
        return real(*args, inputs_embeds=inputs_embeds, **kwargs)

    b.model.model.forward = tight
    split = b.attribute_tokens(enc, target, positions, "integrated_gradients", 8, Request())
    np.testing.assert_allclose(split.attributions, whole.attributions, atol=1e-6)  # float32: batch size noise
    assert sum(sizes) == 8 and max(sizes) <= 2, sizes  # the 8 path points, in passes that fit
    b.model.model.forward = lambda *a, **k: (_ for _ in ()).throw(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    with pytest.raises(ScoringError, match="Out of GPU memory for one gradient pass"):
        b.attribute_tokens(enc, target, positions, "integrated_gradients", 8, Request())
