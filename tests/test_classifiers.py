"""Map classifiers: shapes through the layers, size checks, periodic symmetry, parameter counts."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from astroflow.models.classifiers import CircularClassifier, Penguin, Racoon
from astroflow.models.cnn2d import MomentCNN2d

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def evaluated(net, channels, size):
    """``net`` in eval mode with non-trivial BatchNorm statistics."""
    torch.manual_seed(0)
    with torch.no_grad():
        net(torch.randn(8, channels, size, size) * 2 + 0.5)
    return net.eval()


def conv_output_shapes(body, x):
    shapes = []
    for layer in body:
        x = layer(x)
        if isinstance(layer, nn.Conv2d):
            shapes.append(tuple(x.shape[1:]))
    return shapes


def n_params(net):
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize(
    ("cls", "size"),
    [(Racoon, 64), (Racoon, 128), (Racoon, 256), (Penguin, 64), (Penguin, 128)],
)
def test_logits_and_features_shapes(cls, size):
    torch.manual_seed(0)
    net = cls(in_channels=2, map_size=size, layer_param=4, dropout=0.3, n_classes=3).eval()
    x = torch.randn(2, 2, size, size)
    assert net(x).shape == (2, 3)
    assert net.features(x).shape == (2, 4) and net.feature_dim == 4


@pytest.mark.parametrize("size", [16, 64, 128])
def test_circular_classifier_shapes(size):
    torch.manual_seed(0)
    net = CircularClassifier(in_channels=3, map_size=size, hidden=4, n_classes=5).eval()
    x = torch.randn(2, 3, size, size)
    assert net(x).shape == (2, 5)
    assert net.features(x).shape == (2, 32)


def test_racoon_layers_follow_the_seed_at_256():
    p = 4
    net = Racoon(1, 256, layer_param=p)
    shapes = conv_output_shapes(net.body, torch.randn(2, 1, 256, 256))
    assert shapes == [(p, 64, 64), (4 * p, 16, 16), (8 * p, 4, 4)]
    assert net.embed[2].in_features == 8 * p * 4 * 4


def test_penguin_layers_halve_the_map_six_times():
    p = 2
    net = Penguin(1, 128, layer_param=p)
    shapes = conv_output_shapes(net.body, torch.randn(2, 1, 128, 128))
    widths = [p, 2 * p, 4 * p, 6 * p, 8 * p, 10 * p]
    assert shapes == [(w, 128 >> (i + 1), 128 >> (i + 1)) for i, w in enumerate(widths)]


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: Racoon(1, 100), r"Racoon .*multiple of 64.*got 100"),
        (lambda: Racoon(1, 32), r"Racoon .*multiple of 64.*got 32"),
        (lambda: Penguin(1, 96), r"Penguin .*multiple of 64.*got 96"),
        (lambda: CircularClassifier(1, 96), r"CircularClassifier .*power of two.*got 96"),
        (lambda: CircularClassifier(1, 8), r"CircularClassifier .*power of two.*got 8"),
        (lambda: Racoon(1, 64, n_classes=1), "n_classes"),
        (lambda: Penguin(1, 64, dropout=1.0), "dropout"),
    ],
)
def test_bad_settings_name_the_architecture(build, match):
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.parametrize("cls", [Penguin, Racoon])
def test_body_commutes_with_shifts_by_the_total_stride(cls):
    # Penguin pads circularly, so its body is exactly equivariant to periodic shifts by
    # multiples of 64 pixels; Racoon's patches tile the map. At N = 128 the body ends at 2x2.
    net = evaluated(cls(1, 128, layer_param=2), 1, 128)
    x = torch.randn(2, 1, 128, 128)
    with torch.no_grad():
        out = net.body(x)
        shifted = net.body(torch.roll(x, (64, -64), dims=(-2, -1)))
    assert out.shape[-2:] == (2, 2)
    torch.testing.assert_close(shifted, torch.roll(out, (1, -1), dims=(-2, -1)))


def test_penguin_padding_wraps_around():
    # A map that is zero except on its last row: the first convolution sees that row from the
    # first output row too, because the padding is the opposite edge, not zeros.
    net = evaluated(Penguin(1, 64, layer_param=2), 1, 64)
    conv = net.body[0]
    x = torch.zeros(1, 1, 64, 64)
    x[..., -1, :] = 1.0
    with torch.no_grad():
        out = conv(x)
        wrapped = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="circular"), conv.weight, stride=2)
    assert out[..., 0, :].abs().sum() > 0
    torch.testing.assert_close(out, wrapped)


def test_circular_features_invariant_to_quarter_shifts():
    net = evaluated(CircularClassifier(2, 32, hidden=4), 2, 32)
    x = torch.randn(3, 2, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            net.features(torch.roll(x, (8, 16), dims=(-2, -1))), net.features(x)
        )


def test_logits_are_a_linear_function_of_the_features():
    net = evaluated(Penguin(1, 64, layer_param=3, n_classes=4), 1, 64)
    x = torch.randn(5, 1, 64, 64)
    with torch.no_grad():
        out = net.head[-1]
        torch.testing.assert_close(net(x), net.features(x) @ out.weight.T + out.bias)


@pytest.mark.parametrize(("channels", "p", "size", "classes"), [(1, 8, 64, 2), (3, 4, 128, 5)])
def test_racoon_parameter_count(channels, p, size, classes):
    cells = (size // 64) ** 2
    convs = 16 * (channels * p + p * 4 * p + 4 * p * 8 * p)  # 4x4 kernels, no bias
    batchnorm = 2 * (p + 4 * p + 8 * p)
    dense = (8 * p * cells * p + p) + (p * classes + classes)
    assert n_params(Racoon(channels, size, p, n_classes=classes)) == convs + batchnorm + dense


@pytest.mark.parametrize(("channels", "p", "size", "classes"), [(1, 8, 64, 2), (2, 3, 128, 3)])
def test_penguin_parameter_count(channels, p, size, classes):
    cells = (size // 64) ** 2
    widths = [channels, p, 2 * p, 4 * p, 6 * p, 8 * p, 10 * p]
    convs = sum(16 * a * b for a, b in zip(widths[:-1], widths[1:], strict=True))
    batchnorm = 2 * sum(widths[1:])
    dense = (10 * p * cells * 10 * p + 10 * p) + (10 * p * p + p) + (p * classes + classes)
    assert n_params(Penguin(channels, size, p, n_classes=classes)) == convs + batchnorm + dense


def test_circular_classifier_parameter_count():
    # The cnn2d trunk at N = 64: four blocks of widths h, 2h, 4h, 8h, each a 3x3 and a 2x2
    # convolution (no bias) with BatchNorm; then 8h -> 8h -> K.
    channels, h, classes = 2, 4, 3
    widths = [channels, h, 2 * h, 4 * h, 8 * h]
    trunk = sum(
        9 * a * b + 2 * b + 4 * b * b + 2 * b for a, b in zip(widths[:-1], widths[1:], strict=True)
    )
    head = (8 * h * 8 * h + 8 * h) + (8 * h * classes + classes)
    net = CircularClassifier(channels, 64, hidden=h, n_classes=classes)
    assert n_params(net) == trunk + head
    assert n_params(net.body) == n_params(MomentCNN2d(channels, 1, 64, h).body)
