from seidr.prompts.extract import extract_code


def test_takes_the_python_block():
    reply = "Here:\n```python\nprint(1)\n```\nand to run it:\n```bash\npython x.py\n```"
    assert extract_code(reply) == "print(1)\n"


def test_prefers_the_block_defining_the_entry_point():
    reply = "```python\nprint(f(2))\n```\n```python\ndef f(x):\n    return x\n```"
    assert extract_code(reply, must_define="f") == "def f(x):\n    return x\n"


def test_untagged_block_and_unclosed_block():
    assert extract_code("```\nx = 1\n```") == "x = 1\n"
    assert extract_code("```python\nx = 1\ny = 2") == "x = 1\ny = 2\n"  # cut by the token limit


def test_whole_reply_without_fences():
    assert extract_code("print('hi')") == "print('hi')\n"


def test_other_language_blocks_are_a_last_resort():
    assert extract_code("```js\nconsole.log(1)\n```") == "console.log(1)\n"
