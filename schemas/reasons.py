"""Every reason a row or file is quarantined, and every note on a kept row: a code and the sentence a clerk reads.

One place for the wording: reading, validation, tests and the demo county's ground truth all use these codes.
Templates are `str.format` strings; the placeholders are filled from the offending value.
"""
from __future__ import annotations

# Rejections: the row (or the whole file) goes to quarantine.rejected_rows.
REJECT = {
    # identity number (居民身份证号码, GB 11643)
    "id_missing": "身份证号码为空，无法确认是谁",
    "id_float_mangled": "身份证号码被Excel存成了数字（显示为“{value}”），后几位已经丢失，无法恢复；请把该列设为“文本”格式后重新填写报送",
    "id_bad_length": "身份证号码位数不对（应为18位或旧的15位），收到“{value}”",
    "id_bad_chars": "身份证号码含有数字和末位X以外的字符：“{value}”",
    "id_bad_birthdate": "身份证号码中的出生日期不存在：“{value}”",
    "id_bad_checksum": "身份证号码校验位错误：“{value}”的最后一位应为“{expected}”，请核对是否抄错",
    # disability certificate (残疾人证号 = holder's ID + category + grade)
    "disability_cert_invalid": "残疾人证号格式不对（应为20位：身份证号码+残疾类别1-7+等级1-4），收到“{value}”",
    "disability_cert_mismatch": "残疾人证号前18位与本行身份证号码不一致，无法确认证件属于此人",
    # the row as a whole
    "duplicate_in_list": "与本表第{first_row}行是同一人（重复报送），只保留第一条",
    # the wording of duplicate_in_list when the first row is in another file or sheet of the same list
    # (fangpin.validate still records reason_code duplicate_in_list)
    "duplicate_in_list_elsewhere": "与“{first_file}”{first_sheet}第{first_row}行是同一人（同一名单重复报送），只保留第一条",
    # the wording of duplicate_in_list in the roster when the first row is in another household
    "duplicate_in_two_households": "与“{first_file}”{first_sheet}第{first_row}行是同一人，但那一行属于户编号“{first_household}”，本行属于户编号“{household_id}”；同一人只能在一户，只保留第一条，请核对该人属于哪一户",
    "total_row": "合计/总计行或表尾的签字行（制表人、审核人等），不是人员记录",
    "roster_household_missing": "花名册该行没有户编号，无法归户",
    "roster_household_float_mangled": "户编号被存成了数字（显示为“{value}”），超过15位的数字后几位已经丢失，不同的户会被混为一户，无法归户；请把户编号列设为“文本”格式后重新导出报送",
    # the file or sheet as a whole (row_number is empty)
    "file_unreadable": "文件无法打开：{detail}",
    "file_unrecognised": "无法识别这是哪一张名单：文件名、工作表名和标题里都没有关键词。可用的关键词：{keywords}",
    "file_ambiguous": "同时符合多张名单（{lists}），系统不猜测；请在文件名或工作表名中写明是哪一张",
    "unknown_department": "文件夹“{folder}”不是已登记的部门，文件未处理；请放到部门文件夹中（如 civil_affairs 或 民政局）",
    "no_header": "找不到表头行（需要“身份证号码”等列名），该表未处理",
    "missing_required_column": "缺少必需的列“{column}”，该表未处理",
    # refused by config/county.yaml intake_limits before or while reading (zip bomb, huge file, too many rows)
    "file_too_large": "文件过大，未处理：{detail}；请检查文件是否正确，或按乡镇拆分成几个较小的文件后重新报送",
    # the file name, sheet name or title names another month than the month folder it was put in
    "file_wrong_month": "文件名或标题写的是{found}，但放在{expected}的文件夹里，未处理、不计入{expected}；如确是{expected}的名单，请改正文件名或标题后重新报送，否则请放到{found}的文件夹",
    # township verification workbooks returned (data/raw/<month>/feedback/, list_key 'feedback')
    "feedback_meta_missing": "不是系统下发的核实工作簿（缺少隐藏的“{meta_sheet}”工作表），无法确认是哪个乡镇哪个月的清单，整本未采用；请在系统下发的原工作簿中填写后报回",
    "feedback_meta_altered": "工作簿隐藏的“{meta_sheet}”工作表被改动过，无法确认是哪个乡镇哪个月的清单，整本未采用；请在系统下发的原工作簿中填写后报回",
    "feedback_wrong_month": "这是{found}的核实清单，不是{expected}的，整本未采用；请放到{found}的反馈文件夹中",
    "feedback_other_sheet": "工作表“{other}”中填写了核实结果，但系统只读取“{expected_sheet}”工作表，本表的内容未采用；请把核实结果填写在“{expected_sheet}”中报回",
    "feedback_sheet_missing": "找不到工作表“{expected_sheet}”（被删除或改了名），整本未采用；请不要修改工作表名称",
    "feedback_row_added": "户编号“{value}”不在{township}本月下发的核实清单中（新增的行或改动了户编号），本行未采用",
    "feedback_household_id_changed": "户编号被改成了“{value}”，但户主身份证号码是本清单中户编号“{expected}”那一户的；请恢复原户编号，本行未采用",
    "feedback_id_changed": "户主身份证号码与下发时不一致（户编号“{household_id}”），本行未采用；请不要修改身份证号码",
    "feedback_name_changed": "户主姓名被改成了“{value}”，与下发时不一致（户编号“{household_id}”），本行未采用；如姓名有误，请恢复原姓名并在备注中写明正确姓名",
    "feedback_other_township": "户编号“{value}”是{other}的户，不属于{township}，本行未采用；每个乡镇只能报回本乡镇的户",
    "feedback_duplicate_file": "与《{other}》内容完全相同（同一工作簿报回了两次），只采用《{other}》",
    "feedback_answered_twice": "户编号“{value}”在《{other}》第{other_row}行也报回了核实结果，采用最后保存的《{other}》，本行未采用",
    "feedback_duplicate_row": "户编号“{value}”与第{first_row}行重复，只采用第{first_row}行",
    "feedback_result_missing": "填写了核实日期、核实人或备注，但没有选择核实结果，本行未采用；请在“核实结果”列的下拉框中选择后报回",
    "feedback_password": "工作簿设置了打开密码，但不是县里下发时为本乡镇设置的密码，系统无法打开，整本未采用；请在下发的原工作簿中填写，保持原来的密码，保存后报回",
    "feedback_not_workbook": "只接受系统下发的xlsx核实工作簿，收到的是{suffix}文件，整本未采用；请在下发的工作簿中填写后原样报回",
    "feedback_bad_result": "核实结果“{value}”不是下拉选项之一（{options}），本行未采用",
    "feedback_bad_date": "核实日期“{value}”无法识别，本行未采用；请填写日期，如2026-11-05",
    "feedback_date_missing": "填写了核实结果但没有填写核实日期，本行未采用",
    "feedback_date_out_of_range": "核实日期{value}不可能（早于预警下发日期{issued_on}或晚于今天），本行未采用",
    "feedback_verifier_missing": "填写了核实结果但没有填写核实人，本行未采用",
}

# Notes: the row is kept (accepted) but one value could not be used; recorded in quarantine.row_notes.
NOTE = {
    "date_unparsed": "日期“{value}”无法识别，已留空",
    "date_outside_month": "日期{value}不在报送月份内",
    "amount_unparsed": "金额“{value}”无法识别，已留空",
    "township_unknown": "乡镇“{value}”在花名册中找不到",
    "household_heads": "户编号“{household_id}”一户有{heads}个户主行，户的信息取第一个户主行；请核对是否把两户编成了同一个户编号",
    "household_townships": "户编号“{household_id}”的成员分属不同乡镇（本行“{value}”，户主“{head_township}”），预警按户主所在乡镇分派；请核对户编号是否各乡镇各自编号",
    "household_values_differ": "户编号“{household_id}”各成员行的这一项填写不一致：户的信息取“{value}”（户主行的值；户主行未填时为第一个填写的成员行），其他成员行填的是{others}；请核对后统一",
    "household_size_members": "户编号“{household_id}”家庭人口数填的是{value}人，花名册中该户有{members}人；人均收入按家庭人口数计算，请核对",
    "township_from_code": "乡镇为空，已按区划代码“{code}”补为“{township}”（花名册中同一代码的其他户都属该乡镇）",
    "township_missing": "乡镇为空，也无法从区划代码判断；该户如有预警，无法分派给任何乡镇，请在花名册中补填乡镇",
    "village_unknown": "村“{value}”在花名册该乡镇中找不到",
    "number_unparsed": "数字“{value}”无法识别，已留空",
    "choice_unrecognised": "“{value}”不是可选的填写内容（{options}），已留空",
    "choice_kept": "“{value}”不是常见的写法（{options}），已照原样保留；预警类别和优先级只认这几种写法，请核对",
}

# Files that are not lists at all: skipped with a note in raw.received_files, not quarantined.
IGNORED = {
    "lock_file": "Excel临时锁定文件（~$开头），已忽略",
    "system_file": "操作系统或办公软件自动生成的文件，已忽略",
    "not_spreadsheet": "不是Excel或CSV文件，已忽略；如果是名单，请另存为Excel（.xlsx）或CSV后重新报送",
    "duplicate_file": "与“{other}”内容完全相同（重复报送），只计一次",
}


def reject(code: str, **values: object) -> str:
    """The clerk's sentence for rejection `code`."""
    return REJECT[code].format(**values)


def note(code: str, **values: object) -> str:
    return NOTE[code].format(**values)


def ignored(code: str, **values: object) -> str:
    return IGNORED[code].format(**values)
