"""TensorFlow in this process: imported once, without its start-up chatter.

TensorFlow's C++ side writes INFO lines (absl's pre-init notice, oneDNN and CPU-feature
messages) straight to file descriptor 2 when it loads, whatever ``TF_CPP_MIN_LOG_LEVEL`` says
about later ones. They mean nothing to a user of the command line, a sweep's worker processes
or the app's training worker, so :func:`import_tensorflow` keeps them off the terminal (and out
of worker logs) and passes every other line on.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import warnings

CHATTER = re.compile(r"absl::InitializeLog|oneDNN custom operations|cpu_feature_guard|This TensorFlow binary "
                     r"is optimized|To enable the following instructions|rebuild TensorFlow|^\s*$")


def import_tensorflow():
    """Import TensorFlow and Keras with the start-up chatter filtered out; returns ``tensorflow``.

    Its Python logger (retracing warnings) is set to ERROR and Keras' Python warnings are ignored.
    A process that has TensorFlow already gets it back unchanged.
    """
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        return tf
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import keras  # noqa: F401
            import tensorflow as tf
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        for line in captured.read().decode(errors="replace").splitlines():
            if not CHATTER.search(line):
                print(line, file=sys.stderr)
    tf.get_logger().setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"keras(\.|$)")
    return tf
